// What the fuzz targets share: the city of deploy/cityloop.example.yaml
// (loaded once, through the real config loader), a fixed engine clock, and
// checks that turn a broken promise of a decoder into a crash the fuzzer
// reports.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "core/city.h"
#include "core/config.h"

namespace cityloop::fuzz {

// The engine clock for every decode: 2025-11-28T08:01:00Z, a minute after the
// ts of the seed messages (1764316800000).
inline constexpr int64_t kNowMs = 1764316860000;

// The example config, validated, and its city. Abort when it does not load.
const Config& ExampleConfig();
std::shared_ptr<const CityModel> ExampleCity();

// Prints what and aborts: the fuzzer reports a crash with the input.
[[noreturn]] void Fail(const std::string& what);
inline void Check(bool ok, const std::string& what) {
  if (!ok) Fail(what);
}

// The bytes as text (a view; data may be null when size is 0).
inline std::string_view AsText(const uint8_t* data, size_t size) {
  return size == 0 ? std::string_view() : std::string_view(reinterpret_cast<const char*>(data), size);
}

// Splits "name: value" lines up to the first empty line off text (a frame's
// headers, an HTTP-like envelope); returns what follows the empty line. A
// line without ':' is a header with an empty value. Used to build Kafka
// messages with headers out of fuzz bytes.
template <class OnHeader>
std::string_view SplitHeaders(std::string_view text, OnHeader&& on_header) {
  while (!text.empty()) {
    const size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) break;
    const size_t colon = line.find(':');
    std::string_view name = line.substr(0, colon);
    std::string_view value = colon == std::string_view::npos ? std::string_view() : line.substr(colon + 1);
    if (!value.empty() && value.front() == ' ') value.remove_prefix(1);
    on_header(name, value);
  }
  return text;
}

}  // namespace cityloop::fuzz
