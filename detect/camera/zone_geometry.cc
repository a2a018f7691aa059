#include "detect/camera/zone_geometry.h"

namespace cityloop::detect::camera {

bool InPolygon(const ImagePolygon& poly, ImagePoint p) {
  bool inside = false;
  for (size_t i = 0, j = poly.size() - 1; i < poly.size(); j = i++) {
    const ImagePoint& a = poly[i];
    const ImagePoint& b = poly[j];
    if ((a[1] > p[1]) != (b[1] > p[1]) && p[0] < (b[0] - a[0]) * (p[1] - a[1]) / (b[1] - a[1]) + a[0]) {
      inside = !inside;
    }
  }
  return inside;
}

double SideOfLine(ImagePoint a, ImagePoint b, ImagePoint p) {
  // Image y points down, so the usual cross product's sign is flipped.
  return -((b[0] - a[0]) * (p[1] - a[1]) - (b[1] - a[1]) * (p[0] - a[0]));
}

bool CrossesSegment(ImagePoint a, ImagePoint b, ImagePoint p, ImagePoint q) {
  const double s1 = SideOfLine(a, b, p), s2 = SideOfLine(a, b, q);
  const double s3 = SideOfLine(p, q, a), s4 = SideOfLine(p, q, b);
  return ((s1 > 0 && s2 < 0) || (s1 < 0 && s2 > 0)) && ((s3 > 0 && s4 < 0) || (s3 < 0 && s4 > 0));
}

bool ZoneArmed(const CameraZone& zone, int64_t ts_ms, int utc_offset_minutes) {
  if (!zone.schedule) return true;
  const int64_t local_ms = ts_ms + int64_t{utc_offset_minutes} * 60000;
  const int hour = static_cast<int>(((local_ms / 3600000) % 24 + 24) % 24);
  const auto [from, to] = *zone.schedule;
  return from < to ? (hour >= from && hour < to) : (hour >= from || hour < to);
}

}  // namespace cityloop::detect::camera
