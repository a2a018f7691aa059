// CRC-32C (Castagnoli), the checksum Kafka and ext4 use: detects torn and
// flipped bytes in replay log records. Software slice-by-8, ~2 GB/s.
#pragma once

#include <cstdint>
#include <string_view>

namespace cityloop::replay {

// Extends crc (0 for a fresh checksum) over data.
uint32_t Crc32c(std::string_view data, uint32_t crc = 0);

}  // namespace cityloop::replay
