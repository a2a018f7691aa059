#include <cstdint>

#include "detect/camera/frame_analyzer.h"

namespace cityloop::detect::camera {

bool JpegDimensions(std::string_view jpeg, int* width, int* height) {
  const auto byte = [&](size_t i) { return static_cast<uint8_t>(jpeg[i]); };
  if (jpeg.size() < 4 || byte(0) != 0xFF || byte(1) != 0xD8) return false;
  size_t i = 2;
  while (i + 4 <= jpeg.size()) {
    if (byte(i) != 0xFF) return false;
    const uint8_t marker = byte(i + 1);
    if (marker == 0xFF) {  // fill byte
      ++i;
      continue;
    }
    if (marker == 0xD8 || (marker >= 0xD0 && marker <= 0xD7) || marker == 0x01) {  // no length
      i += 2;
      continue;
    }
    const size_t length = (size_t{byte(i + 2)} << 8) | byte(i + 3);
    if (length < 2) return false;
    // SOF0..SOF15 except DHT (C4), JPG (C8) and DAC (CC).
    if (marker >= 0xC0 && marker <= 0xCF && marker != 0xC4 && marker != 0xC8 && marker != 0xCC) {
      if (i + 9 > jpeg.size()) return false;
      *height = (byte(i + 5) << 8) | byte(i + 6);
      *width = (byte(i + 7) << 8) | byte(i + 8);
      return *width > 0 && *height > 0;
    }
    if (marker == 0xDA || marker == 0xD9) return false;  // scan data or end before any frame header
    i += 2 + length;
  }
  return false;
}

}  // namespace cityloop::detect::camera
