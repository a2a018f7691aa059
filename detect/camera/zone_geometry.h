// Zone and line geometry in normalised image coordinates, shared by frame
// analytics and edge detections. No OpenCV.
#pragma once

#include <cstdint>

#include "core/config.h"
#include "detect/camera/event_lifecycle.h"

namespace cityloop::detect::camera {

// Where an object stands: the bottom-centre of its box.
inline ImagePoint FootPoint(const ImageBox& b) { return {b[0] + b[2] / 2, b[1] + b[3]}; }

// Even-odd rule; points on an edge may fall either way.
bool InPolygon(const ImagePolygon& poly, ImagePoint p);

// > 0 when p is left of a->b (y grows downwards: "left" as seen on screen
// when a->b points up), < 0 when right, 0 on the line.
double SideOfLine(ImagePoint a, ImagePoint b, ImagePoint p);

// True when segment p->q crosses the segment a->b.
bool CrossesSegment(ImagePoint a, ImagePoint b, ImagePoint p, ImagePoint q);

// True when the zone is armed at ts_ms (its schedule in local hours).
bool ZoneArmed(const CameraZone& zone, int64_t ts_ms, int utc_offset_minutes);

}  // namespace cityloop::detect::camera
