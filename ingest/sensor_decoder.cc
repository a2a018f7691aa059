// SensorDecoder: simdjson On Demand over a reused padded buffer.
//
// Checks run in this order, the first failure wins:
//   1. size (oversized), 2. JSON syntax, root object, trailing content
//   (malformed_json), 3. presence and JSON type of every known field, in the
//   order device_id, kind, ts, value, unit, lat, lon (missing_field,
//   wrong_type), 4. meaning: ts parse (bad_timestamp), skew and age
//   (future_timestamp, stale_timestamp), value range (out_of_range),
//   position (out_of_range, outside_city, unknown_location).
// Nesting deeper than 64 levels is malformed_json. A JSON null counts as absent. A device_id longer than 128 characters is
// out_of_range. ts accepts an integer (or an integral number such as
// 1764316800000.0) of epoch ms, or an RFC 3339 string. Unknown fields are
// checked for syntax and otherwise ignored; a repeated field keeps its last
// value.
//
// On Demand runs the simdjson kernel chosen at compile time (no runtime
// dispatch); with the project's default flags that is the portable
// "fallback" kernel, about 0.4 us for a typical reading on one core.
#include "ingest/sensor_decoder.h"

#include <simdjson.h>

#include <charconv>
#include <cmath>
#include <cstring>
#include <optional>
#include <system_error>
#include <utility>
#include <vector>

#include "core/time_util.h"

namespace cityloop::ingest {
namespace {

namespace od = simdjson::ondemand;

constexpr size_t kMaxDeviceIdChars = 128;
constexpr size_t kMaxDetailValueChars = 80;

// One known field as seen in the message.
struct Field {
  bool present = false;  // present and not null
  od::json_type type = od::json_type::null;
  std::string_view raw;  // the value's JSON text (trimmed), for details
  std::string_view str;  // string fields: the unescaped value
  double num = 0;        // number fields
  bool is_integer = false;
  int64_t i64 = 0;       // integer fields that fit in int64
  bool int_overflow = false;
};

// raw cut to kMaxDetailValueChars bytes, never inside a UTF-8 sequence.
std::string Shown(std::string_view raw) {
  if (raw.size() <= kMaxDetailValueChars) return std::string(raw);
  size_t n = kMaxDetailValueChars;
  while (n > 0 && (static_cast<unsigned char>(raw[n]) & 0xC0) == 0x80) --n;
  return std::string(raw.substr(0, n)) + "...";
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\n' || s.back() == '\r')) {
    s.remove_suffix(1);
  }
  return s;
}

const char* TypeName(od::json_type t) {
  switch (t) {
    case od::json_type::array: return "array";
    case od::json_type::object: return "object";
    case od::json_type::number: return "number";
    case od::json_type::string: return "string";
    case od::json_type::boolean: return "boolean";
    case od::json_type::null: return "null";
  }
  return "unknown";
}

// The JSON number grammar: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
bool IsJsonNumber(std::string_view s) {
  size_t i = 0;
  auto digits = [&] {
    const size_t start = i;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i;
    return i > start;
  };
  if (i < s.size() && s[i] == '-') ++i;
  if (i < s.size() && s[i] == '0') {
    ++i;
  } else if (!digits()) {
    return false;
  }
  if (i < s.size() && s[i] == '.') {
    ++i;
    if (!digits()) return false;
  }
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    if (i < s.size() && (s[i] == '+' || s[i] == '-')) ++i;
    if (!digits()) return false;
  }
  return i == s.size();
}

// Shortest text that reads back as d: 20 rather than 20.000000.
std::string Num(double d) {
  char buf[32];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, d);
  return ec == std::errc() ? std::string(buf, end) : std::to_string(d);
}

// Deeper nesting is malformed_json: the walk below recurses per level, and no
// sensor message needs more.
constexpr int kMaxNesting = 64;

// Walks a value the decoder does not use, so that malformed JSON inside an
// unknown field is still reported as malformed_json.
bool Validate(od::value v, int depth = 0) {
  if (depth > kMaxNesting) return false;
  od::json_type t;
  if (v.type().get(t) != simdjson::SUCCESS) return false;
  switch (t) {
    case od::json_type::array: {
      od::array a;
      if (v.get_array().get(a) != simdjson::SUCCESS) return false;
      for (auto element : a) {
        od::value e;
        if (std::move(element).get(e) != simdjson::SUCCESS || !Validate(e, depth + 1)) return false;
      }
      return true;
    }
    case od::json_type::object: {
      od::object o;
      if (v.get_object().get(o) != simdjson::SUCCESS) return false;
      for (auto member : o) {
        od::field f;
        std::string_view key;
        if (std::move(member).get(f) != simdjson::SUCCESS || f.unescaped_key().get(key) != simdjson::SUCCESS ||
            !Validate(f.value(), depth + 1)) {
          return false;
        }
      }
      return true;
    }
    case od::json_type::number:
      return IsJsonNumber(Trim(v.raw_json_token()));
    case od::json_type::string: {
      std::string_view str;
      return v.get_string().get(str) == simdjson::SUCCESS;
    }
    case od::json_type::boolean: {
      bool b;
      return v.get_bool().get(b) == simdjson::SUCCESS;
    }
    case od::json_type::null: {
      bool is_null = false;
      return v.is_null().get(is_null) == simdjson::SUCCESS && is_null;
    }
  }
  return false;
}

Rejection Reject(const char* reason, std::string detail) { return Rejection{reason, std::move(detail)}; }

std::string FieldValue(const char* name, const Field& f) {
  return std::string(name) + "=" + Shown(f.raw) + " (" + TypeName(f.type) + ")";
}

}  // namespace

struct SensorDecoder::Impl {
  std::shared_ptr<const CityModel> city;
  od::parser parser;
  std::vector<char> buffer;  // input copy + SIMDJSON_PADDING

  // Reads one field's value into f. Returns false on a syntax error.
  static bool Capture(od::value v, Field* f) {
    *f = Field{};
    od::json_type t;
    if (v.type().get(t) != simdjson::SUCCESS) return false;
    f->type = t;
    switch (t) {
      case od::json_type::null: {
        bool is_null = false;
        if (v.is_null().get(is_null) != simdjson::SUCCESS || !is_null) return false;
        f->raw = "null";
        return true;  // absent
      }
      case od::json_type::string: {
        f->raw = Trim(v.raw_json_token());
        if (v.get_string().get(f->str) != simdjson::SUCCESS) return false;
        break;
      }
      case od::json_type::number: {
        f->raw = Trim(v.raw_json_token());
        // A syntactically valid number that simdjson cannot represent (beyond
        // uint64 or double) is still a number: it is out of range, not
        // malformed JSON.
        if (!IsJsonNumber(f->raw)) return false;
        od::number_type nt;
        if (v.get_number_type().get(nt) != simdjson::SUCCESS) {
          f->num = f->raw.front() == '-' ? -HUGE_VAL : HUGE_VAL;
          f->is_integer = f->raw.find_first_of(".eE") == std::string_view::npos;
          f->int_overflow = f->is_integer;
          break;
        }
        if (nt == od::number_type::signed_integer) {
          if (v.get_int64().get(f->i64) != simdjson::SUCCESS) return false;  // cannot fail after the check
          f->is_integer = true;
          f->num = static_cast<double>(f->i64);
        } else if (nt == od::number_type::unsigned_integer) {
          // Beyond int64: only its magnitude matters.
          uint64_t u = 0;
          f->is_integer = true;
          f->int_overflow = true;
          f->num = v.get_uint64().get(u) == simdjson::SUCCESS ? static_cast<double>(u) : HUGE_VAL;
        } else if (v.get_double().get(f->num) != simdjson::SUCCESS) {
          f->num = f->raw.front() == '-' ? -HUGE_VAL : HUGE_VAL;  // e.g. 1e999
        }
        break;
      }
      case od::json_type::boolean: {
        bool b = false;
        if (v.get_bool().get(b) != simdjson::SUCCESS) return false;
        f->raw = b ? "true" : "false";
        break;
      }
      case od::json_type::array:
        f->raw = "[...]";
        if (!Validate(v)) return false;
        break;
      case od::json_type::object:
        f->raw = "{...}";
        if (!Validate(v)) return false;
        break;
    }
    f->present = true;
    return true;
  }
};

SensorDecoder::SensorDecoder(std::shared_ptr<const CityModel> city) : impl_(std::make_unique<Impl>()) {
  impl_->city = std::move(city);
}

SensorDecoder::~SensorDecoder() = default;

DecodeOutcome SensorDecoder::Decode(std::string_view value, int64_t now_ms) {
  const CityModel& city = *impl_->city;
  const IngestOptions& limits = city.config().ingest;

  // 1. Size, before touching the bytes.
  if (limits.max_message_bytes > 0 && static_cast<int64_t>(value.size()) > limits.max_message_bytes) {
    return Reject(reason::kOversized, "message is " + std::to_string(value.size()) + " bytes, limit " +
                                          std::to_string(limits.max_message_bytes));
  }

  // 2. Syntax.
  std::vector<char>& buf = impl_->buffer;
  if (buf.size() < value.size() + simdjson::SIMDJSON_PADDING) buf.resize(value.size() + simdjson::SIMDJSON_PADDING);
  if (!value.empty()) std::memcpy(buf.data(), value.data(), value.size());
  std::memset(buf.data() + value.size(), 0, simdjson::SIMDJSON_PADDING);
  simdjson::padded_string_view json(buf.data(), value.size(), buf.size());

  auto malformed = [&](const std::string& what) {
    return Reject(reason::kMalformedJson, what + ": " + Shown(value));
  };
  auto syntax = [&](simdjson::error_code e) {
    return malformed(e == simdjson::TRAILING_CONTENT ? std::string("trailing content")
                                                     : std::string("not JSON (") + simdjson::error_message(e) + ")");
  };
  od::document doc;
  if (auto e = impl_->parser.iterate(json).get(doc)) return syntax(e);
  od::json_type root_type;
  if (auto e = doc.type().get(root_type)) return syntax(e);
  if (root_type != od::json_type::object) return malformed("not a JSON object");
  od::object obj;
  if (auto e = doc.get_object().get(obj)) return syntax(e);

  Field device_id, kind, ts, val, unit, lat, lon;
  for (auto field_result : obj) {
    od::field field;
    if (std::move(field_result).get(field) != simdjson::SUCCESS) return malformed("bad object member");
    std::string_view key;
    if (field.unescaped_key().get(key) != simdjson::SUCCESS) return malformed("bad key");
    Field* target = nullptr;
    if (key == "device_id") target = &device_id;
    else if (key == "kind") target = &kind;
    else if (key == "ts") target = &ts;
    else if (key == "value") target = &val;
    else if (key == "unit") target = &unit;
    else if (key == "lat") target = &lat;
    else if (key == "lon") target = &lon;
    if (!target) {
      if (!Validate(field.value())) return malformed("bad value in field " + Shown(key));
      continue;
    }
    if (!Impl::Capture(field.value(), target)) return malformed("bad value in field " + std::string(key));
  }
  // Anything after the closing brace is trailing garbage.
  const char* rest = nullptr;
  if (doc.current_location().get(rest) != simdjson::OUT_OF_BOUNDS) return malformed("trailing content");

  // 3. Presence and types.
  auto require = [](const char* name, const Field& f) -> std::optional<Rejection> {
    if (!f.present) return Reject(reason::kMissingField, std::string(name) + " is missing");
    return std::nullopt;
  };
  auto wrong = [](const char* name, const Field& f, const char* expected) {
    return Reject(reason::kWrongType, FieldValue(name, f) + ": expected " + expected);
  };
  if (auto r = require("device_id", device_id)) return *r;
  if (device_id.type != od::json_type::string) return wrong("device_id", device_id, "string");
  if (device_id.str.empty()) return Reject(reason::kMissingField, "device_id is empty");
  if (device_id.str.size() > kMaxDeviceIdChars) {
    return Reject(reason::kOutOfRange, "device_id=" + Shown(device_id.str) + " is longer than " +
                                           std::to_string(kMaxDeviceIdChars) + " characters");
  }
  if (auto r = require("kind", kind)) return *r;
  if (kind.type != od::json_type::string) return wrong("kind", kind, "string");
  if (kind.str.empty()) return Reject(reason::kMissingField, "kind is empty");
  if (auto r = require("ts", ts)) return *r;
  if (ts.type != od::json_type::number && ts.type != od::json_type::string) {
    return wrong("ts", ts, "integer epoch ms or RFC 3339 string");
  }
  if (ts.type == od::json_type::number && !ts.is_integer &&
      (!std::isfinite(ts.num) || ts.num != std::floor(ts.num))) {
    return wrong("ts", ts, "integer epoch ms or RFC 3339 string");
  }
  if (auto r = require("value", val)) return *r;
  if (val.type != od::json_type::number) return wrong("value", val, "number");
  if (!std::isfinite(val.num)) return wrong("value", val, "finite number");
  if (unit.present && unit.type != od::json_type::string) return wrong("unit", unit, "string");
  if (lat.present && lat.type != od::json_type::number) return wrong("lat", lat, "number");
  if (lon.present && lon.type != od::json_type::number) return wrong("lon", lon, "number");
  if (lat.present != lon.present) {
    return Reject(reason::kMissingField, lat.present ? "lat is given without lon" : "lon is given without lat");
  }

  // 4. Meaning.
  int64_t ts_ms = 0;
  if (ts.type == od::json_type::string) {
    auto parsed = ParseRfc3339Ms(ts.str);
    if (!parsed) return Reject(reason::kBadTimestamp, FieldValue("ts", ts) + ": not an RFC 3339 timestamp");
    ts_ms = *parsed;
  } else {
    // Within +-2^62 ms (far beyond any real date), so the arithmetic below cannot overflow.
    constexpr double kLimit = 4.6e18;
    if (ts.int_overflow || std::fabs(ts.num) > kLimit) {
      return Reject(reason::kBadTimestamp, FieldValue("ts", ts) + ": not a plausible epoch ms");
    }
    ts_ms = ts.is_integer ? ts.i64 : static_cast<int64_t>(ts.num);
  }
  if (ts_ms > now_ms + limits.max_future_skew_ms) {
    return Reject(reason::kFutureTimestamp, FieldValue("ts", ts) + " is " + std::to_string(ts_ms - now_ms) +
                                                " ms ahead of now (" + FormatRfc3339Ms(now_ms) + ")");
  }
  if (ts_ms < now_ms - limits.max_past_age_ms) {
    return Reject(reason::kStaleTimestamp, FieldValue("ts", ts) + " is " + std::to_string(now_ms - ts_ms) +
                                               " ms old (now " + FormatRfc3339Ms(now_ms) + ")");
  }

  const SensorKind* sk = city.FindSensorKind(kind.str);
  if (sk && (val.num < sk->min || val.num > sk->max)) {
    return Reject(reason::kOutOfRange, FieldValue("value", val) + " outside [" + Num(sk->min) + ", " + Num(sk->max) +
                                           "] for kind " + std::string(kind.str));
  }

  const Device* device = city.FindDevice(device_id.str);
  LatLon position;
  if (lat.present) {
    if (!(lat.num >= -90 && lat.num <= 90)) {
      return Reject(reason::kOutOfRange, FieldValue("lat", lat) + " outside [-90, 90]");
    }
    if (!(lon.num >= -180 && lon.num <= 180)) {
      return Reject(reason::kOutOfRange, FieldValue("lon", lon) + " outside [-180, 180]");
    }
    position = LatLon{lat.num, lon.num};
  } else if (device) {
    position = device->position;
  } else {
    return Reject(reason::kUnknownLocation,
                  "device_id=" + Shown(device_id.str) + " is not registered and the message has no lat/lon");
  }
  const std::optional<int> cell = city.grid().CellAt(position);
  if (!cell) {
    return Reject(reason::kOutsideCity, "position " + Num(position.lat) + "," + Num(position.lon) +
                                            (lat.present ? " (from the message)" : " (registered)") + " of device_id=" +
                                            Shown(device_id.str) + " is outside the city grid");
  }

  Reading r;
  r.device_id = std::string(device_id.str);
  r.kind = std::string(kind.str);
  r.ts_ms = ts_ms;
  r.value = val.num;
  if (unit.present) {
    r.unit = std::string(unit.str);
  } else if (sk) {
    r.unit = sk->unit;
  }
  r.position = position;
  r.registered = device != nullptr;
  r.cell = *cell;
  r.ingest_ms = now_ms;
  return r;
}

}  // namespace cityloop::ingest
