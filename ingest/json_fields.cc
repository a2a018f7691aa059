#include "ingest/json_fields.h"

#include <charconv>
#include <cmath>
#include <cstring>
#include <system_error>
#include <utility>

#include "core/time_util.h"

namespace cityloop::ingest {
namespace internal {
namespace {

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\n' || s.back() == '\r')) {
    s.remove_suffix(1);
  }
  return s;
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

// "detections" + "[3].bbox" -> "detections[3].bbox"; "detections[3]" + "label" -> "detections[3].label".
void PrefixPath(std::string_view head, std::string* path) {
  if (path->empty()) {
    path->assign(head);
  } else if ((*path)[0] == '[') {
    path->insert(0, head);
  } else {
    path->insert(0, std::string(head) + ".");
  }
}

// Keys are short: two overlapping word loads beat a call to memcmp.
template <typename Word>
Word LoadWord(const char* p) {
  Word w;
  std::memcpy(&w, p, sizeof w);
  return w;
}

[[gnu::always_inline]] inline bool SameKey(std::string_view a, std::string_view b) {
  const size_t n = a.size();
  if (n != b.size()) return false;
  if (n >= 8 && n <= 16) {
    return LoadWord<uint64_t>(a.data()) == LoadWord<uint64_t>(b.data()) &&
           LoadWord<uint64_t>(a.data() + n - 8) == LoadWord<uint64_t>(b.data() + n - 8);
  }
  if (n >= 4 && n < 8) {
    return LoadWord<uint32_t>(a.data()) == LoadWord<uint32_t>(b.data()) &&
           LoadWord<uint32_t>(a.data() + n - 4) == LoadWord<uint32_t>(b.data() + n - 4);
  }
  return a == b;
}

// The number of a timestamp or integer field is integral.
bool IsIntegral(const Field& f) { return f.is_integer || (std::isfinite(f.num) && f.num == std::floor(f.num)); }

// Capture's body, inlined into the member walk (the hot path of every decoder).
[[gnu::always_inline]] inline bool CaptureValue(od::value& v, int depth, Field* f) {
  if (!f->raw.empty()) f->ClearValue();  // a repeated field (every captured value has raw text)
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
        f->is_integer = true;
        if (v.get_int64().get(f->i64) != simdjson::SUCCESS) {
          // Below int64 (simdjson types every negative integer as signed):
          // like the unsigned case beyond uint64, only its sign matters.
          f->int_overflow = true;
          f->num = -HUGE_VAL;
          break;
        }
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
      if (!Validate(v, depth)) return false;
      break;
    case od::json_type::object:
      f->raw = "{...}";
      if (!Validate(v, depth)) return false;
      break;
  }
  f->present = true;
  return true;
}

// Reads an array-valued field item by item through f->items.
bool CaptureItems(od::value v, int depth, Field* f, SyntaxError* error) {
  od::json_type t;
  if (v.type().get(t) != simdjson::SUCCESS) return false;
  if (t != od::json_type::array) return Capture(v, depth, f);
  f->ClearValue();
  f->type = t;
  f->raw = "[...]";
  od::array a;
  if (depth > kMaxNesting || v.get_array().get(a) != simdjson::SUCCESS) return false;
  f->items->Begin();
  size_t index = 0;
  for (auto element : a) {
    od::value item;
    if (std::move(element).get(item) != simdjson::SUCCESS || !f->items->Item(item, index, depth + 1, error)) {
      PrefixPath("[" + std::to_string(index) + "]", &error->path);
      return false;
    }
    ++index;
  }
  f->count = index;
  f->present = true;
  return true;
}

const char* ExpectedText(const Field& f) {
  switch (f.expect) {
    case Expect::kString: return "string";
    case Expect::kNumber: return "number";
    case Expect::kFiniteNumber: return f.type == od::json_type::number ? "finite number" : "number";
    case Expect::kTimestamp: return "integer epoch ms or RFC 3339 string";
    case Expect::kArray: return "array";
    case Expect::kStringOrInteger: return "string or integer";
  }
  return "?";
}

bool HasExpectedType(const Field& f) {
  switch (f.expect) {
    case Expect::kString: return f.type == od::json_type::string;
    case Expect::kNumber: return f.type == od::json_type::number;
    case Expect::kFiniteNumber: return f.type == od::json_type::number && std::isfinite(f.num);
    case Expect::kTimestamp:
      return f.type == od::json_type::string || (f.type == od::json_type::number && IsIntegral(f));
    case Expect::kStringOrInteger:  // an integer written as 1e3 must convert to int64 exactly
      return f.type == od::json_type::string ||
             (f.type == od::json_type::number && (f.is_integer || (IsIntegral(f) && std::fabs(f.num) < 0x1p53)));
    case Expect::kArray: return f.type == od::json_type::array;
  }
  return false;
}

}  // namespace

std::string SyntaxError::ToString() const {
  switch (kind) {
    case kBadMember: return path.empty() ? "bad object member" : "bad object member in " + path;
    case kBadKey: return path.empty() ? "bad key" : "bad key in " + path;
    case kBadValue: return "bad value in field " + path;
  }
  return "bad value";
}

void FieldItems::Begin() {
  for (Field& f : fields_) f.ClearValue();
}

bool FieldItems::Item(od::value item, size_t index, int depth, SyntaxError* error) {
  error->kind = SyntaxError::kBadValue;
  error->path.clear();
  return index < fields_.size() ? Capture(item, depth, &fields_[index]) : Validate(item, depth);
}

bool Validate(od::value v, int depth) {
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
    case od::json_type::number: return IsJsonNumber(Trim(v.raw_json_token()));
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

bool Capture(od::value v, int depth, Field* f) { return CaptureValue(v, depth, f); }

bool ReadMembers(od::object obj, std::span<Field* const> fields, int depth, SyntaxError* error) {
  size_t next = 0;
  for (auto member : obj) {
    od::field field;
    if (std::move(member).get(field) != simdjson::SUCCESS) {
      *error = SyntaxError{SyntaxError::kBadMember, {}};
      return false;
    }
    std::string_view key;
    if (field.unescaped_key().get(key) != simdjson::SUCCESS) {
      *error = SyntaxError{SyntaxError::kBadKey, {}};
      return false;
    }
    // Messages mostly list their fields in the decoder's order: try the field
    // after the last one found first.
    size_t found = fields.size();
    if (next < fields.size() && SameKey(fields[next]->key, key)) {
      found = next;
    } else {
      for (size_t i = 0; i < fields.size(); ++i) {
        if (SameKey(fields[i]->key, key)) {
          found = i;
          break;
        }
      }
    }
    Field* target = nullptr;
    if (found < fields.size()) {
      target = fields[found];
      next = found + 1;
    }
    bool ok = false;
    if (!target) {
      ok = Validate(field.value(), depth);
    } else if (target->items) {
      *error = SyntaxError{};  // an item reader names the place below the field
      ok = CaptureItems(field.value(), depth, target, error);
    } else {
      ok = CaptureValue(field.value(), depth, target);
    }
    if (!ok) {
      if (!target || !target->items) *error = SyntaxError{};
      PrefixPath(Shown(key), &error->path);
      return false;
    }
  }
  return true;
}

std::optional<Rejection> JsonMessage::Read(std::string_view value, int64_t max_bytes, std::span<Field* const> fields) {
  // 1. Size, before touching the bytes.
  if (max_bytes > 0 && static_cast<int64_t>(value.size()) > max_bytes) {
    return Reject(reason::kOversized,
                  "message is " + std::to_string(value.size()) + " bytes, limit " + std::to_string(max_bytes));
  }

  // 2. Syntax.
  if (buffer_.size() < value.size() + simdjson::SIMDJSON_PADDING) {
    buffer_.resize(value.size() + simdjson::SIMDJSON_PADDING);
  }
  if (!value.empty()) std::memcpy(buffer_.data(), value.data(), value.size());
  std::memset(buffer_.data() + value.size(), 0, simdjson::SIMDJSON_PADDING);
  simdjson::padded_string_view json(buffer_.data(), value.size(), buffer_.size());

  auto malformed = [&](const std::string& what) { return Reject(reason::kMalformedJson, what + ": " + Shown(value)); };
  auto syntax = [&](simdjson::error_code e) {
    return malformed(e == simdjson::TRAILING_CONTENT ? std::string("trailing content")
                                                     : std::string("not JSON (") + simdjson::error_message(e) + ")");
  };
  od::document doc;
  if (auto e = parser_.iterate(json).get(doc)) return syntax(e);
  od::json_type root_type;
  if (auto e = doc.type().get(root_type)) return syntax(e);
  if (root_type != od::json_type::object) return malformed("not a JSON object");
  od::object obj;
  if (auto e = doc.get_object().get(obj)) return syntax(e);
  SyntaxError error;
  if (!ReadMembers(obj, fields, 0, &error)) return malformed(error.ToString());
  // Anything after the closing brace is trailing garbage.
  const char* rest = nullptr;
  if (doc.current_location().get(rest) != simdjson::OUT_OF_BOUNDS) return malformed("trailing content");
  return std::nullopt;
}

std::optional<Rejection> CheckField(const Field& f, std::string_view prefix) {
  auto name = [&] { return std::string(prefix) + std::string(f.key); };
  if (!f.present) {
    if (f.need == Need::kRequired) return Reject(reason::kMissingField, name() + " is missing");
    return std::nullopt;
  }
  if (!HasExpectedType(f)) return WrongType(name(), f, ExpectedText(f));
  const bool is_string = f.type == od::json_type::string;
  if (is_string && f.need == Need::kRequired && f.str.empty()) {
    return Reject(reason::kMissingField, name() + " is empty");
  }
  const std::string_view text = is_string ? f.str : f.raw;
  if (f.max_chars > 0 && text.size() > f.max_chars) {
    return Reject(reason::kOutOfRange,
                  name() + "=" + Shown(text) + " is longer than " + std::to_string(f.max_chars) + " characters");
  }
  return std::nullopt;
}

Rejection PositionFields::PairProblem() const {
  const Field& given = lat.present ? lat : lon;
  const Field& missing = lat.present ? lon : lat;
  return Reject(reason::kMissingField, std::string(given.key) + " is given without " + std::string(missing.key));
}

Rejection PositionFields::RangeProblem() const {
  if (!(lat.num >= -90 && lat.num <= 90)) return OutsideRange(lat.key, lat, -90, 90);
  return OutsideRange(lon.key, lon, -180, 180);
}

std::optional<Rejection> TimestampField::Check(int64_t now_ms, const IngestOptions& limits, int64_t* ts_ms) const {
  if (type == od::json_type::string) {
    auto parsed = ParseRfc3339Ms(str);
    if (!parsed) return Reject(reason::kBadTimestamp, FieldValue(key, *this) + ": not an RFC 3339 timestamp");
    *ts_ms = *parsed;
  } else {
    // Within +-2^62 ms (far beyond any real date), so the arithmetic below cannot overflow.
    constexpr double kLimit = 4.6e18;
    if (int_overflow || std::fabs(num) > kLimit) {
      return Reject(reason::kBadTimestamp, FieldValue(key, *this) + ": not a plausible epoch ms");
    }
    *ts_ms = is_integer ? i64 : static_cast<int64_t>(num);
  }
  if (*ts_ms > now_ms + limits.max_future_skew_ms) {
    return Reject(reason::kFutureTimestamp, FieldValue(key, *this) + " is " + std::to_string(*ts_ms - now_ms) +
                                                " ms ahead of now (" + FormatRfc3339Ms(now_ms) + ")");
  }
  if (*ts_ms < now_ms - limits.max_past_age_ms) {
    return Reject(reason::kStaleTimestamp, FieldValue(key, *this) + " is " + std::to_string(now_ms - *ts_ms) +
                                               " ms old (now " + FormatRfc3339Ms(now_ms) + ")");
  }
  return std::nullopt;
}

std::optional<Rejection> CheckInsideCity(const CityModel& city, LatLon position, bool from_message,
                                         std::string_view id_name, std::string_view id, int* cell) {
  const std::optional<int> found = city.grid().CellAt(position);
  if (!found) {
    return Reject(reason::kOutsideCity, "position " + Num(position.lat) + "," + Num(position.lon) +
                                            (from_message ? " (from the message)" : " (registered)") + " of " +
                                            std::string(id_name) + "=" + Shown(id) + " is outside the city grid");
  }
  *cell = *found;
  return std::nullopt;
}

Rejection Reject(const char* reason, std::string detail) { return Rejection{reason, std::move(detail)}; }

Rejection OutsideRange(std::string_view name, const Field& f, double lo, double hi) {
  return Reject(reason::kOutOfRange, FieldValue(name, f) + " outside [" + Num(lo) + ", " + Num(hi) + "]");
}

Rejection WrongType(std::string_view name, const Field& f, std::string_view expected) {
  return Reject(reason::kWrongType, FieldValue(name, f) + ": expected " + std::string(expected));
}

std::string FieldValue(std::string_view name, const Field& f) {
  return std::string(name) + "=" + Shown(f.raw) + " (" + TypeName(f.type) + ")";
}

std::string Shown(std::string_view raw) {
  if (raw.size() <= kMaxDetailValueChars) return std::string(raw);
  size_t n = kMaxDetailValueChars;
  while (n > 0 && (static_cast<unsigned char>(raw[n]) & 0xC0) == 0x80) --n;
  return std::string(raw.substr(0, n)) + "...";
}

std::string Num(double d) {
  char buf[32];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, d);
  return ec == std::errc() ? std::string(buf, end) : std::to_string(d);
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

}  // namespace internal

JsonDecoderBase::JsonDecoderBase(std::shared_ptr<const CityModel> city)
    : city_(std::move(city)), message_(std::make_unique<internal::JsonMessage>()) {}

JsonDecoderBase::~JsonDecoderBase() = default;

std::optional<Rejection> JsonDecoderBase::Read(std::string_view value, std::span<internal::Field* const> fields) {
  if (auto r = message_->Read(value, city_->config().ingest.max_message_bytes, fields)) return r;
  return internal::CheckFields(fields);
}

}  // namespace cityloop::ingest
