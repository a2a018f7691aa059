#include "core/geo.h"

#include <cmath>

namespace cityloop {
namespace {
constexpr double kEarthRadiusM = 6371008.8;
constexpr double kMetersPerDegreeLat = 111320.0;
constexpr double kPi = 3.14159265358979323846;
double Rad(double deg) { return deg * kPi / 180.0; }
}  // namespace

double DistanceMeters(LatLon a, LatLon b) {
  const double dlat = Rad(b.lat - a.lat);
  const double dlon = Rad(b.lon - a.lon);
  const double h = std::sin(dlat / 2) * std::sin(dlat / 2) +
                   std::cos(Rad(a.lat)) * std::cos(Rad(b.lat)) * std::sin(dlon / 2) * std::sin(dlon / 2);
  return 2 * kEarthRadiusM * std::asin(std::min(1.0, std::sqrt(h)));
}

GridIndex::GridIndex(GridGeometry g) : g_(g) {
  dlat_ = g_.cell_size_m / kMetersPerDegreeLat;
  dlon_ = g_.cell_size_m / (kMetersPerDegreeLat * std::cos(Rad(g_.origin.lat)));
}

std::optional<int> GridIndex::CellAt(LatLon p) const {
  if (g_.rows <= 0 || g_.cols <= 0 || !std::isfinite(p.lat) || !std::isfinite(p.lon)) return std::nullopt;
  const double r = std::floor((p.lat - g_.origin.lat) / dlat_);
  const double c = std::floor((p.lon - g_.origin.lon) / dlon_);
  if (r < 0 || c < 0 || r >= g_.rows || c >= g_.cols) return std::nullopt;
  return Index(static_cast<int>(r), static_cast<int>(c));
}

LatLon GridIndex::Center(int index) const {
  return {g_.origin.lat + (Row(index) + 0.5) * dlat_, g_.origin.lon + (Col(index) + 0.5) * dlon_};
}

std::vector<int> GridIndex::Neighbours(int index) const {
  std::vector<int> out;
  const int r0 = Row(index), c0 = Col(index);
  for (int dr = -1; dr <= 1; ++dr) {
    for (int dc = -1; dc <= 1; ++dc) {
      const int r = r0 + dr, c = c0 + dc;
      if ((dr || dc) && r >= 0 && c >= 0 && r < g_.rows && c < g_.cols) out.push_back(Index(r, c));
    }
  }
  return out;
}

}  // namespace cityloop
