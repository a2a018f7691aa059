// Time text formats used at the edges: RFC 3339 timestamps and duration
// strings such as "90s", "5m", "2h", "1d" (a bare number means seconds).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace cityloop {

// "2026-11-28T08:00:00Z", "2026-11-28T16:00:00.250+08:00" -> epoch ms.
std::optional<int64_t> ParseRfc3339Ms(std::string_view text);
// Epoch ms -> "2026-11-28T08:00:00.000Z".
std::string FormatRfc3339Ms(int64_t epoch_ms);
// The same text without a heap allocation (the case engine writes two per event).
struct Rfc3339Text {
  char chars[40];
  size_t size = 0;
  std::string_view view() const { return {chars, size}; }
};
Rfc3339Text FormatRfc3339MsText(int64_t epoch_ms);
// "5m" -> 300000. Accepts ms, s, m, h, d suffixes.
std::optional<int64_t> ParseDurationMs(std::string_view text);
// Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar.
int64_t DaysFromCivil(int64_t y, unsigned m, unsigned d);
// The local date as YYYYMMDD at a fixed UTC offset (minutes), for case ids.
std::string FormatLocalDate(int64_t epoch_ms, int utc_offset_minutes);
// The local hour of day 0..23 at a fixed UTC offset.
int LocalHour(int64_t epoch_ms, int utc_offset_minutes);

}  // namespace cityloop
