#include "core/time_util.h"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstring>

namespace cityloop {
namespace {

void CivilFromDays(int64_t z, int64_t* y, unsigned* m, unsigned* d) {
  z += 719468;
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const unsigned doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  *d = doy - (153 * mp + 2) / 5 + 1;
  *m = mp < 10 ? mp + 3 : mp - 9;
  *y = static_cast<int64_t>(yoe) + era * 400 + (*m <= 2);
}

bool Digits(std::string_view s, size_t pos, size_t n, int* out) {
  if (pos + n > s.size()) return false;
  int v = 0;
  for (size_t i = pos; i < pos + n; ++i) {
    if (!std::isdigit(static_cast<unsigned char>(s[i]))) return false;
    v = v * 10 + (s[i] - '0');
  }
  *out = v;
  return true;
}

int64_t FloorDiv(int64_t a, int64_t b) { return a / b - ((a % b != 0) && ((a < 0) != (b < 0))); }

}  // namespace

int64_t DaysFromCivil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

std::optional<int64_t> ParseRfc3339Ms(std::string_view s) {
  int y, mo, d, h, mi, sec;
  if (!Digits(s, 0, 4, &y) || s.size() < 19 || s[4] != '-' || !Digits(s, 5, 2, &mo) || s[7] != '-' ||
      !Digits(s, 8, 2, &d) || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') || !Digits(s, 11, 2, &h) ||
      s[13] != ':' || !Digits(s, 14, 2, &mi) || s[16] != ':' || !Digits(s, 17, 2, &sec)) {
    return std::nullopt;
  }
  static constexpr int kDaysInMonth[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (mo < 1 || mo > 12 || h > 23 || mi > 59 || sec > 60) return std::nullopt;
  const bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  if (d < 1 || d > kDaysInMonth[mo - 1] + (mo == 2 && leap ? 1 : 0)) return std::nullopt;
  size_t pos = 19;
  int64_t frac_ms = 0;
  if (pos < s.size() && s[pos] == '.') {
    ++pos;
    int digits = 0;
    while (pos < s.size() && std::isdigit(static_cast<unsigned char>(s[pos]))) {
      if (digits < 3) frac_ms = frac_ms * 10 + (s[pos] - '0');
      ++digits;
      ++pos;
    }
    if (digits == 0) return std::nullopt;
    for (int i = digits; i < 3; ++i) frac_ms *= 10;
  }
  int64_t offset_min = 0;
  if (pos >= s.size()) return std::nullopt;
  if (s[pos] == 'Z' || s[pos] == 'z') {
    ++pos;
  } else if (s[pos] == '+' || s[pos] == '-') {
    int oh, om;
    if (!Digits(s, pos + 1, 2, &oh) || pos + 3 >= s.size() || s[pos + 3] != ':' || !Digits(s, pos + 4, 2, &om)) {
      return std::nullopt;
    }
    if (oh > 23 || om > 59) return std::nullopt;
    offset_min = (oh * 60 + om) * (s[pos] == '-' ? -1 : 1);
    pos += 6;
  } else {
    return std::nullopt;
  }
  if (pos != s.size()) return std::nullopt;
  const int64_t days = DaysFromCivil(y, static_cast<unsigned>(mo), static_cast<unsigned>(d));
  const int64_t secs = days * 86400 + h * 3600 + mi * 60 + sec - offset_min * 60;
  return secs * 1000 + frac_ms;
}

Rfc3339Text FormatRfc3339MsText(int64_t ms) {
  const int64_t days = FloorDiv(ms, 86400000);
  const int64_t rem = ms - days * 86400000;
  int64_t y;
  unsigned m, d;
  CivilFromDays(days, &y, &m, &d);
  Rfc3339Text out;
  char* buf = out.chars;
  if (y < 0 || y > 9999) {
    const int n = std::snprintf(buf, sizeof out.chars, "%04lld-%02u-%02uT%02lld:%02lld:%02lld.%03lldZ",
                                static_cast<long long>(y), m, d, static_cast<long long>(rem / 3600000),
                                static_cast<long long>(rem / 60000 % 60), static_cast<long long>(rem / 1000 % 60),
                                static_cast<long long>(rem % 1000));
    out.size = static_cast<size_t>(std::clamp(n, 0, static_cast<int>(sizeof out.chars) - 1));
    return out;
  }
  // The common case by hand: this runs for every case event (snprintf was a
  // visible share of the case engine's time).
  auto put = [](char* p, int64_t v, int width) {
    for (int i = width - 1; i >= 0; --i, v /= 10) p[i] = static_cast<char>('0' + v % 10);
  };
  std::memcpy(buf, "0000-00-00T00:00:00.000Z", 25);
  put(buf, y, 4);
  put(buf + 5, m, 2);
  put(buf + 8, d, 2);
  put(buf + 11, rem / 3600000, 2);
  put(buf + 14, rem / 60000 % 60, 2);
  put(buf + 17, rem / 1000 % 60, 2);
  put(buf + 20, rem % 1000, 3);
  out.size = 24;
  return out;
}

std::string FormatRfc3339Ms(int64_t ms) { return std::string(FormatRfc3339MsText(ms).view()); }

std::optional<int64_t> ParseDurationMs(std::string_view s) {
  if (s.empty()) return std::nullopt;
  size_t pos = 0;
  double value = 0;
  bool any = false;
  double frac_scale = 0;
  while (pos < s.size() && (std::isdigit(static_cast<unsigned char>(s[pos])) || s[pos] == '.')) {
    if (s[pos] == '.') {
      if (frac_scale != 0) return std::nullopt;
      frac_scale = 0.1;
    } else if (frac_scale != 0) {
      value += (s[pos] - '0') * frac_scale;
      frac_scale /= 10;
      any = true;
    } else {
      value = value * 10 + (s[pos] - '0');
      any = true;
    }
    ++pos;
  }
  if (!any) return std::nullopt;
  const std::string_view unit = s.substr(pos);
  double scale;
  if (unit.empty() || unit == "s") scale = 1000;
  else if (unit == "ms") scale = 1;
  else if (unit == "m" || unit == "min") scale = 60000;
  else if (unit == "h") scale = 3600000;
  else if (unit == "d") scale = 86400000;
  else return std::nullopt;
  const double ms = value * scale + 0.5;
  if (!(ms < 0x1p63)) return std::nullopt;  // beyond int64 ms: the conversion would be undefined
  return static_cast<int64_t>(ms);
}

std::string FormatLocalDate(int64_t epoch_ms, int utc_offset_minutes) {
  const int64_t local = epoch_ms + int64_t{utc_offset_minutes} * 60000;
  int64_t y;
  unsigned m, d;
  CivilFromDays(FloorDiv(local, 86400000), &y, &m, &d);
  char buf[16];
  std::snprintf(buf, sizeof buf, "%04lld%02u%02u", static_cast<long long>(y), m, d);
  return buf;
}

int LocalHour(int64_t epoch_ms, int utc_offset_minutes) {
  const int64_t local = epoch_ms + int64_t{utc_offset_minutes} * 60000;
  const int64_t in_day = local - FloorDiv(local, 86400000) * 86400000;
  return static_cast<int>(in_day / 3600000);
}

}  // namespace cityloop
