// Config loading: YAML text -> Config, with every problem reported.
//
// The accepted keys are declared as data: one KeyTable per YAML map, each row
// naming the key, its type (as written in docs/CONFIG.md), whether it is
// required, and where in the option structs its value goes. The defaults are
// the ones of the structs in core/config.h. ReadMap() walks a YAML map against
// its table: unknown keys, wrong types and out-of-range values become
// ConfigErrors located by file, line and dotted key path, and reading goes on
// so that one pass reports everything. A second pass (Validate) checks what
// spans keys: unique ids, references, grid coverage, rule levels. Finally
// CityModel::Build runs as a safety net.
//
// No exception leaves this file: yaml-cpp's are caught and turned into errors.
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/city.h"
#include "core/config.h"
#include "core/time_util.h"

namespace cityloop {

std::string ConfigError::ToString() const {
  std::string out = file;
  if (line > 0) out += ":" + std::to_string(line);
  out += ": ";
  if (!key.empty()) out += key + ": ";
  out += message;
  return out;
}

std::map<std::string, SensorKind> BuiltinSensorKinds() {
  const SensorKind kinds[] = {
      {"water_level", "m", 0, 10, 30000},
      {"rainfall", "mm/h", 0, 300, 60000},
      {"gas_ppm", "ppm", 0, 50000, 30000},
      {"manhole_tilt", "deg", 0, 90, 60000},
      {"smoke", "%obs/m", 0, 100, 30000},
      {"pm25", "ug/m3", 0, 2000, 60000},
      {"noise_db", "dB", 0, 160, 60000},
      {"traffic_speed", "km/h", 0, 250, 60000},
      {"bridge_strain", "microstrain", -5000, 5000, 60000},
      {"streetlight_current", "A", 0, 50, 60000},
  };
  std::map<std::string, SensorKind> out;
  for (const auto& k : kinds) out[k.kind] = k;
  return out;
}

namespace {

// ---------------------------------------------------------------------------
// Error collection

std::string Join(const std::string& path, const std::string& key) { return path.empty() ? key : path + "." + key; }
std::string Index(const std::string& path, size_t i) { return path + "[" + std::to_string(i) + "]"; }

int LineOf(const YAML::Node& n) {
  const YAML::Mark m = n.Mark();
  return m.is_null() || m.line < 0 ? 0 : m.line + 1;
}

// Collects errors and remembers the line of every key path it has seen, so
// that checks spanning several keys can still point at the right line.
class Ctx {
 public:
  explicit Ctx(std::string file) : file_(std::move(file)) {}

  void Note(const std::string& path, int line) {
    if (line > 0) lines_[path] = line;
  }
  // The line of path, else of its nearest ancestor that was seen; 0 if none.
  int Line(const std::string& path) const {
    std::string p = path;
    while (!p.empty()) {
      auto it = lines_.find(p);
      if (it != lines_.end()) return it->second;
      p = Parent(p);
    }
    return 0;
  }
  void Error(const std::string& path, int line, std::string message) {
    errors_.push_back({file_, line, path, std::move(message)});
    bad_.insert(path);
  }
  void Error(const std::string& path, std::string message) { Error(path, Line(path), std::move(message)); }
  // True when neither path nor any ancestor already has an error: checks on a
  // value that failed to read are skipped, so one mistake gives one error.
  bool Ok(const std::string& path) const {
    for (std::string p = path; !p.empty(); p = Parent(p)) {
      if (bad_.count(p)) return false;
    }
    return true;
  }
  bool Clean() const { return errors_.empty(); }
  std::vector<ConfigError> TakeErrors() {
    std::stable_sort(errors_.begin(), errors_.end(), [](const ConfigError& a, const ConfigError& b) {
      // Document order; errors without a line go last.
      const int la = a.line > 0 ? a.line : INT32_MAX;
      const int lb = b.line > 0 ? b.line : INT32_MAX;
      return la < lb;
    });
    return std::move(errors_);
  }
  const std::string& file() const { return file_; }

 private:
  static std::string Parent(const std::string& p) {
    const size_t cut = p.find_last_of(".[");
    return cut == std::string::npos ? std::string() : p.substr(0, cut);
  }

  std::string file_;
  std::vector<ConfigError> errors_;
  std::map<std::string, int> lines_;
  std::set<std::string> bad_;
};

// ---------------------------------------------------------------------------
// "did you mean"

size_t EditDistance(std::string_view a, std::string_view b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t sub = prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1);
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, sub});
    }
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

// " (did you mean 'x'?)" when one candidate is close enough, else "".
std::string Suggest(std::string_view word, const std::vector<std::string>& candidates) {
  const size_t limit = std::max<size_t>(1, std::min<size_t>(3, word.size() / 3));
  size_t best = limit + 1;
  std::string pick;
  for (const auto& c : candidates) {
    const size_t d = EditDistance(word, c);
    if (d < best) best = d, pick = c;
  }
  return pick.empty() ? std::string() : " (did you mean '" + pick + "'?)";
}

// ---------------------------------------------------------------------------
// Scalar readers: each reports its own error and returns nullopt on failure.

std::string Describe(const YAML::Node& n) {
  if (n.IsMap()) return "a map";
  if (n.IsSequence()) return "a list";
  if (n.IsNull()) return "nothing";
  std::string s = n.Scalar();
  if (s.size() > 40) s = s.substr(0, 37) + "...";
  return "'" + s + "'";
}

// Reports "expected <expected>, got <what n is>" at n unless ok; returns ok.
bool Expect(Ctx& ctx, bool ok, const YAML::Node& n, const std::string& path, const char* expected) {
  if (!ok) ctx.Error(path, LineOf(n), std::string("expected ") + expected + ", got " + Describe(n));
  return ok;
}

bool IsScalar(Ctx& ctx, const YAML::Node& n, const std::string& path, const char* expected) {
  return Expect(ctx, n.IsScalar(), n, path, expected);
}
bool IsMap(Ctx& ctx, const YAML::Node& n, const std::string& path) { return Expect(ctx, n.IsMap(), n, path, "a map"); }
bool IsList(Ctx& ctx, const YAML::Node& n, const std::string& path) {
  return Expect(ctx, n.IsSequence(), n, path, "a list");
}

// A scalar turned into a value by parse, which returns nullopt for text that
// is not one. `scalar` names the value in the error for a node that is no
// scalar, `expected` in the one for a scalar that does not parse.
template <typename Parse>
auto ReadParsed(Ctx& ctx, const YAML::Node& n, const std::string& path, const char* scalar, const char* expected,
                Parse parse) -> decltype(parse(n.Scalar())) {
  if (!IsScalar(ctx, n, path, scalar)) return std::nullopt;
  auto v = parse(n.Scalar());
  Expect(ctx, v.has_value(), n, path, expected);
  return v;
}

std::optional<std::string> ReadString(Ctx& ctx, const YAML::Node& n, const std::string& path) {
  if (!IsScalar(ctx, n, path, "a string")) return std::nullopt;
  return n.Scalar();
}

// s, all of it, as a T by std::from_chars; a leading '+' is allowed.
template <typename T>
std::optional<T> FromChars(std::string_view s) {
  T v{};
  const char* b = s.data();
  const char* e = s.data() + s.size();
  if (!s.empty() && s.front() == '+') ++b;
  auto [ptr, ec] = std::from_chars(b, e, v);
  if (ec != std::errc() || ptr != e || b == e) return std::nullopt;
  return v;
}

std::optional<int64_t> ParseInt(std::string_view s) { return FromChars<int64_t>(s); }

std::optional<double> ParseNumber(std::string_view s) {
  auto v = FromChars<double>(s);
  if (v && !std::isfinite(*v)) return std::nullopt;
  return v;
}

std::optional<int64_t> ReadInt(Ctx& ctx, const YAML::Node& n, const std::string& path) {
  return ReadParsed(ctx, n, path, "an integer", "an integer", ParseInt);
}

std::optional<double> ReadNumber(Ctx& ctx, const YAML::Node& n, const std::string& path) {
  return ReadParsed(ctx, n, path, "a number", "a number", ParseNumber);
}

std::optional<bool> ReadBool(Ctx& ctx, const YAML::Node& n, const std::string& path) {
  if (!IsScalar(ctx, n, path, "true or false")) return std::nullopt;
  bool b = false;
  if (!Expect(ctx, YAML::convert<bool>::decode(n, b), n, path, "true or false")) return std::nullopt;
  return b;
}

std::optional<int64_t> ReadDuration(Ctx& ctx, const YAML::Node& n, const std::string& path) {
  return ReadParsed(ctx, n, path, "a duration", "a duration such as 250ms, 30s, 5m, 2h or 1d", ParseDurationMs);
}

std::optional<Priority> ReadPriority(Ctx& ctx, const YAML::Node& n, const std::string& path) {
  return ReadParsed(ctx, n, path, "a priority", "a priority (urgent, high, normal, low)", ParsePriority);
}

// "+08:00" -> 480.
std::optional<int> ParseUtcOffset(std::string_view s) {
  if (s == "Z") return 0;
  if (s.size() != 6 || (s[0] != '+' && s[0] != '-') || s[3] != ':') return std::nullopt;
  for (size_t i : {1u, 2u, 4u, 5u}) {
    if (s[i] < '0' || s[i] > '9') return std::nullopt;
  }
  const int h = (s[1] - '0') * 10 + (s[2] - '0');
  const int m = (s[4] - '0') * 10 + (s[5] - '0');
  if (h > 14 || m > 59) return std::nullopt;
  return (s[0] == '-' ? -1 : 1) * (h * 60 + m);
}

std::optional<int> ReadUtcOffset(Ctx& ctx, const YAML::Node& n, const std::string& path) {
  return ReadParsed(ctx, n, path, "a string", "a UTC offset such as \"+08:00\"", ParseUtcOffset);
}

// [a, b]: two integers.
std::optional<std::pair<int, int>> ReadIntPair(Ctx& ctx, const YAML::Node& n, const std::string& path) {
  if (!Expect(ctx, n.IsSequence() && n.size() == 2 && n[0].IsScalar() && n[1].IsScalar(), n, path,
              "a list of two integers [from, to]")) {
    return std::nullopt;
  }
  auto a = ParseInt(n[0].Scalar());
  auto b = ParseInt(n[1].Scalar());
  if (!a || !b || *a < INT32_MIN || *a > INT32_MAX || *b < INT32_MIN || *b > INT32_MAX) {
    ctx.Error(path, LineOf(n), "expected a list of two integers [from, to]");
    return std::nullopt;
  }
  return std::make_pair(static_cast<int>(*a), static_cast<int>(*b));
}

// ---------------------------------------------------------------------------
// Value checks: return an error message, or "" when the value is fine.

template <typename T>
using Check = std::function<std::string(const T&)>;

std::string Num(double v) {
  std::ostringstream os;
  os << v;
  return os.str();
}

Check<double> InRange(double lo, double hi, const char* what = "value") {
  return [=](const double& v) {
    return v >= lo && v <= hi ? std::string()
                              : std::string(what) + " must be within [" + Num(lo) + ", " + Num(hi) + "], got " + Num(v);
  };
}
Check<int64_t> PositiveMs() {
  return [](const int64_t& v) { return v > 0 ? std::string() : std::string("must be longer than 0"); };
}
Check<std::string> NonEmpty() {
  return [](const std::string& s) { return s.empty() ? std::string("must not be empty") : std::string(); };
}
bool IsIdChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-' ||
         c == '.';
}
std::string IdProblem(const std::string& s) {
  if (s.empty()) return "must not be empty";
  if (!std::all_of(s.begin(), s.end(), IsIdChar)) {
    return "'" + s + "' is not a valid id (letters, digits, '_', '-', '.')";
  }
  return {};
}
Check<std::string> IsId() { return IdProblem; }
Check<std::string> Digits(size_t n) {
  return [n](const std::string& s) {
    const bool ok = s.size() == n && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
    return ok ? std::string() : "must be " + std::to_string(n) + " digits, got '" + s + "'";
  };
}
std::string HostPortProblem(const std::string& s) {
  const size_t colon = s.rfind(':');
  if (colon == std::string::npos || colon == 0) return "expected HOST:PORT, got '" + s + "'";
  auto port = ParseInt(std::string_view(s).substr(colon + 1));
  if (!port || *port < 0 || *port > 65535) return "expected HOST:PORT with a port 0..65535, got '" + s + "'";
  return {};
}
Check<std::string> HostPort() { return HostPortProblem; }
// "h1:9092,h2:9092"
Check<std::string> HostPortList() {
  return [](const std::string& s) {
    std::string_view rest = s;
    while (true) {
      const size_t comma = rest.find(',');
      std::string one(rest.substr(0, comma));
      if (auto p = HostPortProblem(one); !p.empty()) return p;
      if (comma == std::string_view::npos) return std::string();
      rest.remove_prefix(comma + 1);
    }
  };
}
Check<std::string> TopicName() {
  return [](const std::string& s) {
    const bool ok = !s.empty() && s.size() <= 249 && std::all_of(s.begin(), s.end(), IsIdChar);
    return ok ? std::string() : "'" + s + "' is not a valid Kafka topic name";
  };
}

// A word from a fixed list, as its enum value; else reports the choices.
template <typename E>
std::optional<E> ReadWord(Ctx& ctx, const YAML::Node& n, const std::string& path,
                          const std::vector<std::pair<std::string, E>>& choices) {
  auto v = ReadString(ctx, n, path);
  if (!v) return std::nullopt;
  std::vector<std::string> words;
  for (const auto& [w, e] : choices) {
    if (w == *v) return e;
    words.push_back(w);
  }
  std::string list;
  for (const auto& w : words) list += (list.empty() ? "" : ", ") + w;
  ctx.Error(path, LineOf(n), "expected one of " + list + ", got '" + *v + "'" + Suggest(*v, words));
  return std::nullopt;
}

// [x, y] within the frame (normalised image coordinates).
std::optional<ImagePoint> ReadImagePoint(Ctx& ctx, const YAML::Node& n, const std::string& path) {
  const char* expected = "a point [x, y] with both within [0, 1]";
  if (!Expect(ctx, n.IsSequence() && n.size() == 2 && n[0].IsScalar() && n[1].IsScalar(), n, path, expected)) {
    return std::nullopt;
  }
  auto x = ParseNumber(n[0].Scalar()), y = ParseNumber(n[1].Scalar());
  if (!x || !y || *x < 0 || *x > 1 || *y < 0 || *y > 1) {
    ctx.Error(path, LineOf(n), std::string("expected ") + expected);
    return std::nullopt;
  }
  return ImagePoint{*x, *y};
}

// A direction [dx, dy], each within [-1, 1], not both 0.
std::optional<ImagePoint> ReadDirection(Ctx& ctx, const YAML::Node& n, const std::string& path) {
  const char* expected = "a direction [dx, dy] with both within [-1, 1], not both 0";
  if (!Expect(ctx, n.IsSequence() && n.size() == 2 && n[0].IsScalar() && n[1].IsScalar(), n, path, expected)) {
    return std::nullopt;
  }
  auto x = ParseNumber(n[0].Scalar()), y = ParseNumber(n[1].Scalar());
  if (!x || !y || std::abs(*x) > 1 || std::abs(*y) > 1 || (*x == 0 && *y == 0)) {
    ctx.Error(path, LineOf(n), std::string("expected ") + expected);
    return std::nullopt;
  }
  return ImagePoint{*x, *y};
}

// [[x, y], [x, y], [x, y], ...]: at least three points.
std::optional<ImagePolygon> ReadImagePolygon(Ctx& ctx, const YAML::Node& n, const std::string& path) {
  if (!Expect(ctx, n.IsSequence() && n.size() >= 3, n, path, "a polygon: a list of at least 3 points [x, y]")) {
    return std::nullopt;
  }
  ImagePolygon poly;
  bool ok = true;
  for (size_t i = 0; i < n.size(); ++i) {
    auto p = ReadImagePoint(ctx, n[i], Index(path, i));
    ok = ok && p.has_value();
    if (p) poly.push_back(*p);
  }
  if (!ok) return std::nullopt;
  double twice_area = 0;
  for (size_t i = 0; i < poly.size(); ++i) {
    const ImagePoint& a = poly[i];
    const ImagePoint& b = poly[(i + 1) % poly.size()];
    twice_area += a[0] * b[1] - b[0] * a[1];
  }
  if (std::abs(twice_area) < 1e-6) {
    ctx.Error(path, LineOf(n), "the polygon has no area (its points are on one line)");
    return std::nullopt;
  }
  return poly;
}

// ---------------------------------------------------------------------------
// Key tables

enum Need { kOptional = 0, kRequired = 1 };

template <typename Obj>
struct KeySpec {
  std::string name;
  std::string type;  // as documented in docs/CONFIG.md
  bool required = false;
  std::function<void(Ctx&, const YAML::Node&, const std::string&, Obj&)> read;
};
template <typename Obj>
using KeyTable = std::vector<KeySpec<Obj>>;

template <typename Obj>
void ReadMap(Ctx& ctx, const YAML::Node& node, const std::string& path, const KeyTable<Obj>& table, Obj& obj);

// True when there is no check or v passes it; else reports the check's message.
template <typename T>
bool Passes(Ctx& ctx, const Check<T>& check, const T& v, const std::string& path, int line) {
  if (!check) return true;
  const std::string msg = check(v);
  if (!msg.empty()) ctx.Error(path, line, msg);
  return msg.empty();
}

// Walks the items of the list n, noting the line of each; visit(item, item
// path). Anything but a list is reported instead.
template <typename Visit>
void ForEachItem(Ctx& ctx, const YAML::Node& n, const std::string& path, Visit visit) {
  if (!IsList(ctx, n, path)) return;
  for (size_t i = 0; i < n.size(); ++i) {
    const std::string ip = Index(path, i);
    const YAML::Node item = n[i];
    ctx.Note(ip, LineOf(item));
    visit(item, ip);
  }
}

// Walks the keys of the map n in document order: a key that is no scalar, or
// repeats an earlier one, is reported and skipped; for every other key its
// line is noted and visit(key node, value node, key, key path) called.
// Returns the keys seen (including those visit rejects).
template <typename Visit>
std::set<std::string> ForEachKey(Ctx& ctx, const YAML::Node& n, const std::string& path, Visit visit) {
  std::set<std::string> seen;
  for (const auto& kv : n) {
    const YAML::Node key = kv.first;  // copies: yaml-cpp iterators hand out temporaries
    const YAML::Node value = kv.second;
    if (!IsScalar(ctx, key, path, "a key")) continue;
    const std::string k = key.Scalar();
    const std::string kp = Join(path, k);
    ctx.Note(kp, LineOf(key));
    if (!seen.insert(k).second) {
      ctx.Error(kp, LineOf(key), "duplicate key");
      continue;
    }
    visit(key, value, k, kp);
  }
  return seen;
}

// A reader of one value of type T: nullopt once it has reported an error.
template <typename T>
using Reader = std::optional<T> (*)(Ctx&, const YAML::Node&, const std::string&);

// Builders for the rows of a KeyTable<Obj>. An accessor is a data member
// pointer or a callable Obj& -> field&.
template <typename Obj>
struct Keys {
  using Spec = KeySpec<Obj>;
  template <typename Acc>
  static auto& Field(Acc acc, Obj& o) {
    return std::invoke(acc, o);
  }

  // A value read by `read` and, when it passes `check`, stored in the field.
  template <typename T, typename Acc>
  static Spec Scalar(std::string name, std::string type, Need need, Acc acc, Reader<T> read,
                     Check<T> check = nullptr) {
    return {std::move(name), std::move(type), need == kRequired,
            [acc, read, check](Ctx& ctx, const YAML::Node& n, const std::string& path, Obj& o) {
              if (auto v = read(ctx, n, path); v && Passes(ctx, check, *v, path, LineOf(n))) Field(acc, o) = *v;
            }};
  }

  template <typename Acc>
  static Spec Str(std::string name, Acc acc, Need need = kOptional, Check<std::string> check = nullptr) {
    return Scalar<std::string>(std::move(name), "string", need, acc, &ReadString, std::move(check));
  }
  template <typename Acc>
  static Spec Int(std::string name, Acc acc, int64_t lo, int64_t hi, Need need = kOptional) {
    return {std::move(name), "integer", need == kRequired,
            [acc, lo, hi](Ctx& ctx, const YAML::Node& n, const std::string& path, Obj& o) {
              if (auto v = ReadInt(ctx, n, path)) {
                if (*v < lo || *v > hi) {
                  ctx.Error(path, LineOf(n),
                            "must be within [" + std::to_string(lo) + ", " + std::to_string(hi) + "], got " +
                                std::to_string(*v));
                  return;
                }
                auto& f = Field(acc, o);
                f = static_cast<std::remove_reference_t<decltype(f)>>(*v);
              }
            }};
  }
  template <typename Acc>
  static Spec Number(std::string name, Acc acc, Need need = kOptional, Check<double> check = nullptr,
                     std::string type = "number") {
    return Scalar<double>(std::move(name), std::move(type), need, acc, &ReadNumber, std::move(check));
  }
  template <typename Acc>
  static Spec Lat(std::string name, Acc acc, Need need = kRequired) {
    return Number(std::move(name), acc, need, InRange(-90, 90, "latitude"), "latitude");
  }
  template <typename Acc>
  static Spec Lon(std::string name, Acc acc, Need need = kRequired) {
    return Number(std::move(name), acc, need, InRange(-180, 180, "longitude"), "longitude");
  }
  template <typename Acc>
  static Spec Bool(std::string name, Acc acc) {
    return Scalar<bool>(std::move(name), "bool", kOptional, acc, &ReadBool);
  }
  template <typename Acc>
  static Spec Duration(std::string name, Acc acc, Need need = kOptional, Check<int64_t> check = nullptr) {
    return Scalar<int64_t>(std::move(name), "duration", need, acc, &ReadDuration, std::move(check));
  }
  template <typename Acc>
  static Spec Prio(std::string name, Acc acc) {
    return Scalar<Priority>(std::move(name), "priority", kOptional, acc, &ReadPriority);
  }
  // [from, to], each within [lo, hi]; set(obj, pair).
  static Spec Pair(std::string name, int lo, int hi, Need need,
                   std::function<void(Obj&, std::pair<int, int>)> set) {
    return {std::move(name), "[int, int]", need == kRequired,
            [lo, hi, set](Ctx& ctx, const YAML::Node& n, const std::string& path, Obj& o) {
              auto v = ReadIntPair(ctx, n, path);
              if (!v) return;
              if (v->first < lo || v->first > hi || v->second < lo || v->second > hi) {
                ctx.Error(path, LineOf(n),
                          "both ends must be within [" + std::to_string(lo) + ", " + std::to_string(hi) + "], got [" +
                              std::to_string(v->first) + ", " + std::to_string(v->second) + "]");
                return;
              }
              set(o, *v);
            }};
  }
  template <typename Acc>
  static Spec UtcOffset(std::string name, Acc acc) {
    return Scalar<int>(std::move(name), "utc offset", kOptional, acc, &ReadUtcOffset);
  }
  template <typename Acc>
  static Spec StrList(std::string name, Acc acc, Check<std::string> check = nullptr) {
    return {std::move(name), "list of strings", false,
            [acc, check](Ctx& ctx, const YAML::Node& n, const std::string& path, Obj& o) {
              ForEachItem(ctx, n, path, [&](const YAML::Node& item, const std::string& ip) {
                auto v = ReadString(ctx, item, ip);
                const bool ok = v && Passes(ctx, check, *v, ip, LineOf(item));
                Field(acc, o).push_back(ok ? *v : std::string());  // keep indices aligned with the YAML
              });
            }};
  }
  // A map with free keys; each value read by `read` into map[key].
  template <typename Acc, typename V>
  static Spec FreeMap(std::string name, std::string type, Acc acc, Reader<V> read, Check<V> check = nullptr) {
    return {std::move(name), std::move(type), false,
            [acc, read, check](Ctx& ctx, const YAML::Node& n, const std::string& path, Obj& o) {
              if (!IsMap(ctx, n, path)) return;
              auto& out = Field(acc, o);
              ForEachKey(ctx, n, path,
                         [&](const YAML::Node&, const YAML::Node& value, const std::string& k, const std::string& kp) {
                           if (auto v = read(ctx, value, kp); v && Passes(ctx, check, *v, kp, LineOf(value))) {
                             out[k] = *v;
                           }
                         });
            }};
  }
  // A nested map read into the field `acc` with its own table.
  template <typename Sub, typename Acc>
  static Spec Section(std::string name, Acc acc, const KeyTable<Sub>& (*table)(), Need need = kOptional) {
    return {std::move(name), "map", need == kRequired,
            [acc, table](Ctx& ctx, const YAML::Node& n, const std::string& path, Obj& o) {
              ReadMap<Sub>(ctx, n, path, table(), Field(acc, o));
            }};
  }
  // A nested map whose keys land in the same object (kafka.batch.*).
  static Spec Group(std::string name, const KeyTable<Obj>& (*table)(), Need need = kOptional) {
    return Section<Obj>(std::move(name), [](Obj& o) -> Obj& { return o; }, table, need);
  }
  // A list of maps, each read with the element's table. Every item is
  // appended, even a broken one, so city.devices[i] is config devices[i].
  template <typename Elem, typename Acc>
  static Spec List(std::string name, Acc acc, const KeyTable<Elem>& (*table)()) {
    return {std::move(name), "list of maps", false,
            [acc, table](Ctx& ctx, const YAML::Node& n, const std::string& path, Obj& o) {
              ForEachItem(ctx, n, path, [&](const YAML::Node& item, const std::string& ip) {
                Elem e{};
                ReadMap<Elem>(ctx, item, ip, table(), e);
                Field(acc, o).push_back(std::move(e));
              });
            }};
  }
  // A map from free keys to maps read with the element's table; init(key,
  // current map) gives the starting value (e.g. a built-in sensor kind).
  template <typename Elem, typename Acc>
  static Spec MapOf(std::string name, Acc acc, const KeyTable<Elem>& (*table)(),
                    std::function<Elem(const std::string&, const std::map<std::string, Elem>&)> init) {
    return {std::move(name), "map of maps", false,
            [acc, table, init](Ctx& ctx, const YAML::Node& n, const std::string& path, Obj& o) {
              if (!IsMap(ctx, n, path)) return;
              auto& out = Field(acc, o);
              ForEachKey(ctx, n, path,
                         [&](const YAML::Node& key, const YAML::Node& value, const std::string& k,
                             const std::string& kp) {
                           if (auto p = IdProblem(k); !p.empty()) {
                             ctx.Error(kp, LineOf(key), p);
                             return;
                           }
                           Elem e = init(k, out);
                           if (!value.IsNull()) ReadMap<Elem>(ctx, value, kp, table(), e);
                           out[k] = std::move(e);
                         });
            }};
  }
  // A word from a fixed list, stored as its enum value.
  template <typename E, typename Acc>
  static Spec Choice(std::string name, Acc acc, std::vector<std::pair<std::string, E>> choices) {
    return {std::move(name), "one of", false,
            [acc, choices](Ctx& ctx, const YAML::Node& n, const std::string& path, Obj& o) {
              if (auto e = ReadWord(ctx, n, path, choices)) Field(acc, o) = *e;
            }};
  }
  // A list of words from a fixed list, each stored as its enum value.
  template <typename E, typename Acc>
  static Spec Words(std::string name, Acc acc, std::vector<std::pair<std::string, E>> choices) {
    return {std::move(name), "list of words", false,
            [acc, choices](Ctx& ctx, const YAML::Node& n, const std::string& path, Obj& o) {
              ForEachItem(ctx, n, path, [&](const YAML::Node& item, const std::string& ip) {
                if (auto e = ReadWord(ctx, item, ip, choices)) Field(acc, o).push_back(*e);
              });
            }};
  }
  // A list of values each read by `read`.
  template <typename T, typename Acc>
  static Spec ListOf(std::string name, std::string type, Acc acc, Reader<T> read) {
    return {std::move(name), std::move(type), false,
            [acc, read](Ctx& ctx, const YAML::Node& n, const std::string& path, Obj& o) {
              ForEachItem(ctx, n, path, [&](const YAML::Node& item, const std::string& ip) {
                if (auto v = read(ctx, item, ip)) Field(acc, o).push_back(*v);
              });
            }};
  }
  // A section kept for a later version: rejected with a clear message.
  static Spec Reserved(std::string name) {
    return {name, "reserved", false, [name](Ctx& ctx, const YAML::Node& n, const std::string& path, Obj&) {
              ctx.Error(path, LineOf(n),
                        "section '" + name + "' is reserved for a later version and not supported yet; remove it");
            }};
  }
};

template <typename Obj>
void ReadMap(Ctx& ctx, const YAML::Node& node, const std::string& path, const KeyTable<Obj>& table, Obj& obj) {
  if (!node.IsMap()) {
    ctx.Error(path, node.IsNull() ? ctx.Line(path) : LineOf(node), "expected a map, got " + Describe(node));
    return;
  }
  std::set<std::string> present;  // keys with a value
  auto read_key = [&](const YAML::Node& k, const YAML::Node& v, const std::string& name, const std::string& kp) {
    auto spec = std::find_if(table.begin(), table.end(), [&](const KeySpec<Obj>& s) { return s.name == name; });
    if (spec == table.end()) {
      std::vector<std::string> names;
      for (const auto& s : table) names.push_back(s.name);
      ctx.Error(kp, LineOf(k), "unknown key" + Suggest(name, names));
      return;
    }
    if (v.IsNull()) return;  // "key:" with no value is the same as leaving it out
    present.insert(name);
    spec->read(ctx, v, kp, obj);
  };
  const std::set<std::string> seen = ForEachKey(ctx, node, path, read_key);  // keys written
  const int line = ctx.Line(path) > 0 ? ctx.Line(path) : LineOf(node);
  for (const auto& s : table) {
    if (!s.required || present.count(s.name)) continue;
    const std::string kp = Join(path, s.name);
    if (seen.count(s.name)) {
      if (ctx.Ok(kp)) ctx.Error(kp, ctx.Line(kp), "value missing");
    } else {
      ctx.Error(kp, line, "missing required key");
    }
  }
}

// ---------------------------------------------------------------------------
// The YAML shape. Where it differs from the option structs (nesting that is
// flattened, levels named by direction), small intermediate structs hold it.

struct StreetY {
  Street s;
  std::vector<Community> communities;
};
struct DistrictY {
  District d;
  std::vector<StreetY> streets;
};
// rules[].overrides.<device>: the keys each kind allows are in its table.
struct OverrideY {
  std::optional<double> above, below, clear, rise, fall;
  std::optional<int64_t> for_ms, interval_ms;
};
// One rules[] item: the kind's option struct plus what the YAML says
// differently (levels named by direction, enums as words).
struct RuleY {
  std::string path;  // rules[i]
  std::string kind;
  ThresholdRule threshold;
  RateRule rate;
  WindowRule window;
  NoSignalRule no_signal;
  FlappingRule flapping;
  CorrelationRule correlation;
  CameraRule camera;
  std::optional<double> above, below, clear, rise, fall, percentile;
  std::string window_type;  // window.type
  std::map<std::string, OverrideY> overrides;
  RuleBase& Base() {
    if (kind == "rate") return rate;
    if (kind == "window") return window;
    if (kind == "no_signal") return no_signal;
    if (kind == "flapping") return flapping;
    if (kind == "correlation") return correlation;
    if (kind == "camera") return camera;
    return threshold;
  }
};
struct Root {
  Config cfg;
  std::vector<DistrictY> districts;
  std::vector<RuleY> rules;
};

// kafka.topics.<key>: one row each in TopicKeys, and one name one purpose.
constexpr std::pair<const char*, std::string TopicNames::*> kTopics[] = {
    {"sensors", &TopicNames::sensors},
    {"camera_frames", &TopicNames::camera_frames},
    {"camera_detections", &TopicNames::camera_detections},
    {"reports", &TopicNames::reports},
    {"units", &TopicNames::units},
    {"commands", &TopicNames::commands},
    {"cases", &TopicNames::cases},
    {"dispatch", &TopicNames::dispatch},
    {"dlq", &TopicNames::dlq},
    {"work", &TopicNames::work},
    {"changelog", &TopicNames::changelog},
};

const KeyTable<TopicNames>& TopicKeys() {
  static const KeyTable<TopicNames> t = [] {
    KeyTable<TopicNames> keys;
    for (const auto& [key, member] : kTopics) {
      keys.push_back(Keys<TopicNames>::Str(key, member, kOptional, TopicName()));
    }
    return keys;
  }();
  return t;
}

const KeyTable<KafkaOptions>& BatchKeys() {
  using K = Keys<KafkaOptions>;
  static const KeyTable<KafkaOptions> t = {
      K::Int("max_messages", &KafkaOptions::batch_max_messages, 1, 1000000),
      K::Duration("max_wait", &KafkaOptions::batch_max_ms),
  };
  return t;
}

const KeyTable<KafkaOptions>& KafkaKeys() {
  using K = Keys<KafkaOptions>;
  static const KeyTable<KafkaOptions> t = {
      K::Str("bootstrap", &KafkaOptions::bootstrap, kOptional, HostPortList()),
      K::Str("group_id", &KafkaOptions::group_id, kOptional, NonEmpty()),
      K::Str("client_id", &KafkaOptions::client_id, kOptional, NonEmpty()),
      K::Int("partitions", &KafkaOptions::partitions, 1, 256),
      K::Section<TopicNames>("topics", &KafkaOptions::topics, &TopicKeys),
      K::Group("batch", &BatchKeys),
      K::FreeMap<decltype(&KafkaOptions::properties), std::string>("properties", "map of strings",
                                                                   &KafkaOptions::properties, &ReadString),
      K::FreeMap<decltype(&KafkaOptions::properties), std::string>(
          "consumer_properties", "map of strings", &KafkaOptions::consumer_properties, &ReadString),
      K::FreeMap<decltype(&KafkaOptions::properties), std::string>(
          "producer_properties", "map of strings", &KafkaOptions::producer_properties, &ReadString),
  };
  return t;
}

const KeyTable<StorageOptions>& StorageKeys() {
  using K = Keys<StorageOptions>;
  static const KeyTable<StorageOptions> t = {
      K::Str("path", &StorageOptions::path, kOptional, NonEmpty()),
      K::Bool("sync", &StorageOptions::sync_writes),
  };
  return t;
}

const KeyTable<ScaleOptions>& ScaleKeys() {
  using K = Keys<ScaleOptions>;
  static const KeyTable<ScaleOptions> t = {
      K::Int("shards", &ScaleOptions::shards, 0, 1024),
  };
  return t;
}

const KeyTable<IngestOptions>& IngestKeys() {
  using K = Keys<IngestOptions>;
  static const KeyTable<IngestOptions> t = {
      K::Int("max_message_bytes", &IngestOptions::max_message_bytes, 1, int64_t{1} << 30),
      K::Duration("max_future_skew", &IngestOptions::max_future_skew_ms),
      K::Duration("max_past_age", &IngestOptions::max_past_age_ms, kOptional, PositiveMs()),
      K::Int("max_report_text_bytes", &IngestOptions::max_report_text_bytes, 1, int64_t{1} << 20),
      K::Int("max_detections", &IngestOptions::max_detections_per_message, 1, 100000),
  };
  return t;
}

const KeyTable<LatLon>& LatLonKeys() {
  using K = Keys<LatLon>;
  static const KeyTable<LatLon> t = {
      K::Lat("lat", &LatLon::lat),
      K::Lon("lon", &LatLon::lon),
  };
  return t;
}

const KeyTable<GridGeometry>& GridKeys() {
  using K = Keys<GridGeometry>;
  static const KeyTable<GridGeometry> t = {
      K::Section<LatLon>("origin", &GridGeometry::origin, &LatLonKeys, kRequired),
      K::Number("cell_size_m", &GridGeometry::cell_size_m, kOptional, InRange(1, 100000, "cell_size_m")),
      K::Int("rows", &GridGeometry::rows, 1, 1000, kRequired),
      K::Int("cols", &GridGeometry::cols, 1, 1000, kRequired),
  };
  return t;
}

const KeyTable<SensorKind>& SensorKindKeys() {
  using K = Keys<SensorKind>;
  static const KeyTable<SensorKind> t = {
      K::Str("unit", &SensorKind::unit),
      K::Number("min", &SensorKind::min),
      K::Number("max", &SensorKind::max),
      K::Duration("report_interval", &SensorKind::report_interval_ms, kOptional, PositiveMs()),
  };
  return t;
}

const KeyTable<Community>& CommunityKeys() {
  using K = Keys<Community>;
  static const KeyTable<Community> t = {
      K::Str("id", &Community::id, kRequired, IsId()),
      K::Str("name", &Community::name),
      K::Str("code", &Community::code, kRequired, Digits(3)),
      K::Pair("rows", 0, 1000000, kRequired,
              [](Community& c, std::pair<int, int> v) { c.row_from = v.first, c.row_to = v.second; }),
      K::Pair("cols", 0, 1000000, kRequired,
              [](Community& c, std::pair<int, int> v) { c.col_from = v.first, c.col_to = v.second; }),
  };
  return t;
}

const KeyTable<StreetY>& StreetKeys() {
  using K = Keys<StreetY>;
  static const KeyTable<StreetY> t = {
      K::Str("id", [](StreetY& s) -> std::string& { return s.s.id; }, kRequired, IsId()),
      K::Str("name", [](StreetY& s) -> std::string& { return s.s.name; }),
      K::Str("code", [](StreetY& s) -> std::string& { return s.s.code; }, kRequired, Digits(3)),
      K::List<Community>("communities", &StreetY::communities, &CommunityKeys),
  };
  return t;
}

const KeyTable<DistrictY>& DistrictKeys() {
  using K = Keys<DistrictY>;
  static const KeyTable<DistrictY> t = {
      K::Str("id", [](DistrictY& d) -> std::string& { return d.d.id; }, kRequired, IsId()),
      K::Str("name", [](DistrictY& d) -> std::string& { return d.d.name; }),
      K::Str("code", [](DistrictY& d) -> std::string& { return d.d.code; }, kRequired, Digits(6)),
      K::Str("default_department", [](DistrictY& d) -> std::string& { return d.d.default_department; }, kRequired),
      K::List<StreetY>("streets", &DistrictY::streets, &StreetKeys),
  };
  return t;
}

const KeyTable<Department>& DepartmentKeys() {
  using K = Keys<Department>;
  static const KeyTable<Department> t = {
      K::Str("id", &Department::id, kRequired, IsId()),
      K::Str("name", &Department::name),
  };
  return t;
}

const KeyTable<Category>& CategoryKeys() {
  using K = Keys<Category>;
  static const KeyTable<Category> t = {
      K::Str("id", &Category::id, kRequired, IsId()),
      K::Str("name", &Category::name),
      K::Str("code", &Category::code, kOptional, Digits(4)),
      K::Str("department", &Category::department, kRequired),
      K::Prio("priority", &Category::priority),
      K::Bool("confirm", &Category::requires_confirmation),
  };
  return t;
}

const KeyTable<Device>& DeviceKeys() {
  using K = Keys<Device>;
  static const KeyTable<Device> t = {
      K::Str("id", &Device::id, kRequired, IsId()),
      K::Str("kind", &Device::kind, kRequired),
      K::Lat("lat", [](Device& d) -> double& { return d.position.lat; }),
      K::Lon("lon", [](Device& d) -> double& { return d.position.lon; }),
      K::Str("name", &Device::name),
  };
  return t;
}

std::vector<std::pair<std::string, ZoneDetector>> ZoneDetectorWords() {
  std::vector<std::pair<std::string, ZoneDetector>> words;
  for (ZoneDetector d : kAllZoneDetectors) words.emplace_back(ZoneDetectorName(d), d);
  return words;
}

const KeyTable<CameraZone>& CameraZoneKeys() {
  using K = Keys<CameraZone>;
  static const KeyTable<CameraZone> t = {
      K::Str("id", &CameraZone::id, kRequired, IsId()),
      K::Scalar<ImagePolygon>("polygon", "polygon", kRequired, &CameraZone::polygon, &ReadImagePolygon),
      K::Words<ZoneDetector>("detectors", &CameraZone::detectors, ZoneDetectorWords()),
      K::Str("category", &CameraZone::category),
      K::StrList("labels", &CameraZone::labels, NonEmpty()),
      K::Number("min_area", &CameraZone::min_area, kOptional, InRange(0, 1, "min_area")),
      K::Int("inertia", &CameraZone::inertia, 1, 1000),
      K::Scalar<int64_t>("dwell", "duration", kOptional,
                         [](CameraZone& z) -> std::optional<int64_t>& { return z.dwell_ms; }, &ReadDuration),
      K::Pair("schedule", 0, 23, kOptional, [](CameraZone& z, std::pair<int, int> v) { z.schedule = v; }),
      K::Scalar<ImagePoint>("direction", "[dx, dy]", kOptional, &CameraZone::direction, &ReadDirection),
  };
  return t;
}

const KeyTable<CameraLine>& CameraLineKeys() {
  using K = Keys<CameraLine>;
  static const KeyTable<CameraLine> t = {
      K::Str("id", &CameraLine::id, kRequired, IsId()),
      K::Scalar<ImagePoint>("from", "[x, y]", kRequired, &CameraLine::a, &ReadImagePoint),
      K::Scalar<ImagePoint>("to", "[x, y]", kRequired, &CameraLine::b, &ReadImagePoint),
      K::StrList("labels", &CameraLine::labels, NonEmpty()),
      K::Str("category", &CameraLine::category),
      K::Choice<LineDirection>("alarm", &CameraLine::alarm,
                               {{"both", LineDirection::kBoth},
                                {"a_to_b", LineDirection::kAToB},
                                {"b_to_a", LineDirection::kBToA}}),
  };
  return t;
}

const KeyTable<Camera>& CameraKeys() {
  using K = Keys<Camera>;
  static const KeyTable<Camera> t = {
      K::Str("id", &Camera::id, kRequired, IsId()),
      K::Lat("lat", [](Camera& c) -> double& { return c.position.lat; }),
      K::Lon("lon", [](Camera& c) -> double& { return c.position.lon; }),
      K::Str("name", &Camera::name),
      K::List<CameraZone>("zones", &Camera::zones, &CameraZoneKeys),
      K::ListOf<ImagePolygon>("masks", "list of polygons", &Camera::masks, &ReadImagePolygon),
      K::List<CameraLine>("lines", &Camera::lines, &CameraLineKeys),
  };
  return t;
}

const KeyTable<Unit>& UnitKeys() {
  using K = Keys<Unit>;
  static const KeyTable<Unit> t = {
      K::Str("id", &Unit::id, kRequired, IsId()),
      K::Str("department", &Unit::department, kRequired),
      K::Str("name", &Unit::name),
      K::Lat("lat", [](Unit& u) -> double& { return u.base.lat; }),
      K::Lon("lon", [](Unit& u) -> double& { return u.base.lon; }),
      K::StrList("districts", &Unit::districts),
      K::Str("type", &Unit::type),
  };
  return t;
}

const KeyTable<Root>& CityKeys() {
  using K = Keys<Root>;
  static const KeyTable<Root> t = {
      K::Str("name", [](Root& r) -> std::string& { return r.cfg.city.name; }),
      K::UtcOffset("utc_offset", [](Root& r) -> int& { return r.cfg.city.utc_offset_minutes; }),
      K::Section<GridGeometry>("grid", [](Root& r) -> GridGeometry& { return r.cfg.city.grid; }, &GridKeys,
                               kRequired),
      K::MapOf<SensorKind>(
          "sensor_kinds", [](Root& r) -> std::map<std::string, SensorKind>& { return r.cfg.city.sensor_kinds; },
          &SensorKindKeys,
          [](const std::string& k, const std::map<std::string, SensorKind>& have) {
            auto it = have.find(k);
            if (it != have.end()) return it->second;
            SensorKind s;
            s.kind = k;
            return s;
          }),
      K::List<DistrictY>("districts", &Root::districts, &DistrictKeys),
      K::List<Department>("departments", [](Root& r) -> std::vector<Department>& { return r.cfg.city.departments; },
                          &DepartmentKeys),
      K::List<Category>("catalogue", [](Root& r) -> std::vector<Category>& { return r.cfg.city.catalogue; },
                        &CategoryKeys),
      K::List<Device>("devices", [](Root& r) -> std::vector<Device>& { return r.cfg.city.devices; }, &DeviceKeys),
      K::List<Camera>("cameras", [](Root& r) -> std::vector<Camera>& { return r.cfg.city.cameras; }, &CameraKeys),
      K::List<Unit>("units", [](Root& r) -> std::vector<Unit>& { return r.cfg.city.units; }, &UnitKeys),
  };
  return t;
}

// Rows for a rules[].overrides.<device> map of the given keys.
KeyTable<OverrideY> OverrideRows(std::initializer_list<const char*> names) {
  using K = Keys<OverrideY>;
  const std::map<std::string, KeySpec<OverrideY>> all = {
      {"above", K::Number("above", &OverrideY::above)},
      {"below", K::Number("below", &OverrideY::below)},
      {"clear", K::Number("clear", &OverrideY::clear)},
      {"rise", K::Number("rise", &OverrideY::rise)},
      {"fall", K::Number("fall", &OverrideY::fall)},
      {"for", K::Duration("for", &OverrideY::for_ms)},
      {"interval", K::Duration("interval", &OverrideY::interval_ms, kOptional, PositiveMs())},
  };
  KeyTable<OverrideY> t;
  for (const char* n : names) t.push_back(all.at(n));
  return t;
}
const KeyTable<OverrideY>& ThresholdOverrideKeys() {
  static const KeyTable<OverrideY> t = OverrideRows({"above", "below", "clear", "for"});
  return t;
}
const KeyTable<OverrideY>& RateOverrideKeys() {
  static const KeyTable<OverrideY> t = OverrideRows({"rise", "fall"});
  return t;
}
const KeyTable<OverrideY>& WindowOverrideKeys() {
  static const KeyTable<OverrideY> t = OverrideRows({"above", "below"});
  return t;
}
const KeyTable<OverrideY>& NoSignalOverrideKeys() {
  static const KeyTable<OverrideY> t = OverrideRows({"interval"});
  return t;
}

using KR = Keys<RuleY>;

// Keys every rule kind has.
KeyTable<RuleY> CommonRuleRows() {
  return {
      KR::Str("id", [](RuleY& r) -> std::string& { return r.Base().id; }, kRequired, IsId()),
      KR::Str("kind", &RuleY::kind, kRequired),
      KR::Str("category", [](RuleY& r) -> std::string& { return r.Base().category; }, kRequired),
      KR::Prio("priority", [](RuleY& r) -> std::optional<Priority>& { return r.Base().priority; }),
      KR::Bool("opens_case", [](RuleY& r) -> bool& { return r.Base().opens_case; }),
  };
}
KeyTable<RuleY> WithCommon(KeyTable<RuleY> rows) {
  KeyTable<RuleY> t = CommonRuleRows();
  for (auto& row : rows) t.push_back(std::move(row));
  return t;
}
template <typename Acc>
KeySpec<RuleY> Overrides(Acc table) {
  return KR::MapOf<OverrideY>("overrides", &RuleY::overrides, table,
                             [](const std::string&, const std::map<std::string, OverrideY>&) { return OverrideY{}; });
}

const KeyTable<RuleY>& ThresholdRuleKeys() {
  static const KeyTable<RuleY> t = WithCommon({
      KR::Str("sensor", [](RuleY& r) -> std::string& { return r.threshold.sensor_kind; }, kRequired),
      KR::Number("above", &RuleY::above),
      KR::Number("below", &RuleY::below),
      KR::Number("clear", &RuleY::clear),
      KR::Duration("for", [](RuleY& r) -> int64_t& { return r.threshold.min_duration_ms; }),
      KR::Pair("active_hours", 0, 23, kOptional, [](RuleY& r, std::pair<int, int> v) { r.threshold.active_hours = v; }),
      KR::StrList("devices", [](RuleY& r) -> std::vector<std::string>& { return r.threshold.devices; }),
      Overrides(&ThresholdOverrideKeys),
  });
  return t;
}

const KeyTable<RuleY>& RateRuleKeys() {
  static const KeyTable<RuleY> t = WithCommon({
      KR::Str("sensor", [](RuleY& r) -> std::string& { return r.rate.sensor_kind; }, kRequired),
      KR::Number("rise", &RuleY::rise),
      KR::Number("fall", &RuleY::fall),
      KR::Number("clear", &RuleY::clear),
      KR::Duration("per", [](RuleY& r) -> int64_t& { return r.rate.per_ms; }, kOptional, PositiveMs()),
      KR::Duration("min_span", [](RuleY& r) -> int64_t& { return r.rate.min_span_ms; }),
      KR::StrList("devices", [](RuleY& r) -> std::vector<std::string>& { return r.rate.devices; }),
      Overrides(&RateOverrideKeys),
  });
  return t;
}

const KeyTable<RuleY>& WindowSpecKeys() {
  static const KeyTable<RuleY> t = {
      KR::Str("type", &RuleY::window_type),
      KR::Duration("size", [](RuleY& r) -> int64_t& { return r.window.size_ms; }, kRequired, PositiveMs()),
      KR::Duration("slide", [](RuleY& r) -> int64_t& { return r.window.slide_ms; }, kOptional, PositiveMs()),
  };
  return t;
}

const KeyTable<RuleY>& WindowRuleKeys() {
  static const KeyTable<RuleY> t = WithCommon({
      KR::Str("sensor", [](RuleY& r) -> std::string& { return r.window.sensor_kind; }, kRequired),
      KR::Group("window", &WindowSpecKeys, kRequired),
      KR::Choice<Aggregate>("aggregate", [](RuleY& r) -> Aggregate& { return r.window.aggregate; },
                        {{"count", Aggregate::kCount},
                         {"min", Aggregate::kMin},
                         {"max", Aggregate::kMax},
                         {"mean", Aggregate::kMean},
                         {"sum", Aggregate::kSum},
                         {"percentile", Aggregate::kPercentile}}),
      KR::Number("percentile", &RuleY::percentile, kOptional,
                [](const double& v) {
                  return v > 0 && v <= 100 ? std::string() : "must be within (0, 100], got " + Num(v);
                }),
      KR::Number("above", &RuleY::above),
      KR::Number("below", &RuleY::below),
      KR::Int("min_samples", [](RuleY& r) -> int& { return r.window.min_samples; }, 0, 1000000),
      KR::StrList("devices", [](RuleY& r) -> std::vector<std::string>& { return r.window.devices; }),
      Overrides(&WindowOverrideKeys),
  });
  return t;
}

const KeyTable<RuleY>& NoSignalRuleKeys() {
  static const KeyTable<RuleY> t = WithCommon({
      KR::StrList("sensors", [](RuleY& r) -> std::vector<std::string>& { return r.no_signal.sensor_kinds; }),
      KR::Number("factor", [](RuleY& r) -> double& { return r.no_signal.factor; }, kOptional,
                [](const double& v) { return v > 1 ? std::string() : "must be greater than 1, got " + Num(v); }),
      KR::Scalar<int64_t>("interval", "duration", kOptional,
                         [](RuleY& r) -> std::optional<int64_t>& { return r.no_signal.interval_ms; }, &ReadDuration,
                         PositiveMs()),
      KR::StrList("devices", [](RuleY& r) -> std::vector<std::string>& { return r.no_signal.devices; }),
      Overrides(&NoSignalOverrideKeys),
  });
  return t;
}

const KeyTable<RuleY>& FlappingRuleKeys() {
  static const KeyTable<RuleY> t = WithCommon({
      KR::StrList("rules", [](RuleY& r) -> std::vector<std::string>& { return r.flapping.rules; }),
      KR::Int("transitions", [](RuleY& r) -> int& { return r.flapping.transitions; }, 1, 10000),
      KR::Duration("within", [](RuleY& r) -> int64_t& { return r.flapping.within_ms; }, kOptional, PositiveMs()),
  });
  return t;
}

const KeyTable<CorrelationMember>& MemberKeys() {
  using KM = Keys<CorrelationMember>;
  static const KeyTable<CorrelationMember> t = {
      KM::Str("rule", &CorrelationMember::rule),
      KM::Str("category", &CorrelationMember::category),
  };
  return t;
}

const KeyTable<RuleY>& CorrelationRuleKeys() {
  static const KeyTable<RuleY> t = WithCommon({
      KR::List<CorrelationMember>(
          "when", [](RuleY& r) -> std::vector<CorrelationMember>& { return r.correlation.when; }, &MemberKeys),
      KR::Duration("within", [](RuleY& r) -> int64_t& { return r.correlation.within_ms; }, kOptional, PositiveMs()),
      KR::Choice<CorrelationScope>("scope", [](RuleY& r) -> CorrelationScope& { return r.correlation.scope; },
                               {{"cell", CorrelationScope::kCell},
                                {"neighbours", CorrelationScope::kNeighbours},
                                {"district", CorrelationScope::kDistrict},
                                {"radius", CorrelationScope::kRadius}}),
      KR::Number("radius_m", [](RuleY& r) -> double& { return r.correlation.radius_m; }, kOptional,
                InRange(1, 100000, "radius_m")),
      KR::Bool("absorb", [](RuleY& r) -> bool& { return r.correlation.absorb; }),
  });
  return t;
}

std::optional<std::vector<double>> ReadZone(Ctx& ctx, const YAML::Node& n, const std::string& path) {
  const char* expected = "a list of four numbers [x, y, w, h] within [0, 1]";
  if (!Expect(ctx, n.IsSequence() && n.size() == 4, n, path, expected)) return std::nullopt;
  std::vector<double> v;
  for (size_t i = 0; i < 4; ++i) {
    auto x = n[i].IsScalar() ? ParseNumber(n[i].Scalar()) : std::nullopt;
    if (!x || *x < 0 || *x > 1) {
      ctx.Error(path, LineOf(n), std::string("expected ") + expected);
      return std::nullopt;
    }
    v.push_back(*x);
  }
  if (v[0] + v[2] > 1 + 1e-9 || v[1] + v[3] > 1 + 1e-9) {
    ctx.Error(path, LineOf(n), "the zone reaches outside the frame (x + w and y + h must be <= 1)");
    return std::nullopt;
  }
  return v;
}

const KeyTable<RuleY>& CameraRuleKeys() {
  static const KeyTable<RuleY> t = WithCommon({
      KR::StrList("labels", [](RuleY& r) -> std::vector<std::string>& { return r.camera.labels; }, NonEmpty()),
      KR::Number("min_score", [](RuleY& r) -> double& { return r.camera.min_score; }, kOptional,
                InRange(0, 1, "min_score")),
      KR::StrList("cameras", [](RuleY& r) -> std::vector<std::string>& { return r.camera.cameras; }),
      KR::Duration("for", [](RuleY& r) -> int64_t& { return r.camera.min_duration_ms; }),
      KR::Int("min_detections", [](RuleY& r) -> int& { return r.camera.min_detections; }, 1, 100000),
      KR::Duration("cooldown", [](RuleY& r) -> int64_t& { return r.camera.cooldown_ms; }, kOptional, PositiveMs()),
      KR::Scalar<std::vector<double>>(
          "zone", "[x, y, w, h]", kOptional,
          [](RuleY& r) -> std::optional<std::vector<double>>& { return r.camera.zone; }, &ReadZone),
  });
  return t;
}

// rules: a list of rules, each of a `kind`; the kind picks the key table.
const std::vector<std::pair<std::string, const KeyTable<RuleY>& (*)()>>& RuleKinds() {
  static const std::vector<std::pair<std::string, const KeyTable<RuleY>& (*)()>> kinds = {
      {"threshold", &ThresholdRuleKeys}, {"rate", &RateRuleKeys},         {"window", &WindowRuleKeys},
      {"no_signal", &NoSignalRuleKeys},  {"flapping", &FlappingRuleKeys}, {"correlation", &CorrelationRuleKeys},
      {"camera", &CameraRuleKeys},
  };
  return kinds;
}

KeySpec<Root> RulesKey() {
  return {"rules", "list of rules", false, [](Ctx& ctx, const YAML::Node& n, const std::string& path, Root& root) {
            std::vector<std::string> names;
            std::string list;
            for (const auto& [k, t] : RuleKinds()) {
              names.push_back(k);
              list += (list.empty() ? "" : ", ") + k;
            }
            ForEachItem(ctx, n, path, [&](const YAML::Node& item, const std::string& ip) {
              if (!IsMap(ctx, item, ip)) return;
              const YAML::Node kind = item["kind"];
              if (!kind.IsDefined() || kind.IsNull()) {
                ctx.Error(Join(ip, "kind"), LineOf(item), "missing required key (one of: " + list + ")");
                return;
              }
              auto table = std::find_if(RuleKinds().begin(), RuleKinds().end(),
                                        [&](const auto& k) { return kind.IsScalar() && k.first == kind.Scalar(); });
              if (table == RuleKinds().end()) {
                ctx.Error(Join(ip, "kind"), LineOf(kind),
                          "unsupported rule kind " + Describe(kind) + " (supported: " + list + ")" +
                              (kind.IsScalar() ? Suggest(kind.Scalar(), names) : std::string()));
                return;
              }
              RuleY r;
              r.path = ip;
              r.kind = table->first;
              ReadMap<RuleY>(ctx, item, ip, table->second(), r);
              root.rules.push_back(std::move(r));
            });
          }};
}

std::optional<SlaLimit> ReadSlaLimit(Ctx& ctx, const YAML::Node& n, const std::string& path) {
  return ReadParsed(ctx, n, path, "a time limit",
                    "a time limit such as 30m, 4h (wall clock), 4wh (working hours), 90wm or 1wd (working days)",
                    ParseSlaLimit);
}

// "-30m" as well as "30m": an offset from a deadline.
std::optional<int64_t> ParseSignedDurationMs(std::string_view s) {
  if (!s.empty() && s.front() == '-') {
    auto v = ParseDurationMs(s.substr(1));
    return v ? std::optional<int64_t>(-*v) : std::nullopt;
  }
  if (s == "0") return 0;
  return ParseDurationMs(s);
}

std::optional<int64_t> ReadSignedDuration(Ctx& ctx, const YAML::Node& n, const std::string& path) {
  return ReadParsed(ctx, n, path, "a duration", "a duration such as -30m, 0 or 2h", ParseSignedDurationMs);
}

// "08:30-12:00" -> {510, 720}.
std::optional<std::pair<int, int>> ParseHourRange(std::string_view s) {
  auto minutes = [](std::string_view t) -> std::optional<int> {
    if (t.size() != 5 || t[2] != ':') return std::nullopt;
    auto h = FromChars<int>(t.substr(0, 2));
    auto m = FromChars<int>(t.substr(3, 2));
    if (!h || !m || *h > 24 || *m > 59 || (*h == 24 && *m != 0)) return std::nullopt;
    return *h * 60 + *m;
  };
  const size_t dash = s.find('-');
  if (dash == std::string_view::npos) return std::nullopt;
  auto from = minutes(s.substr(0, dash));
  auto to = minutes(s.substr(dash + 1));
  if (!from || !to || *from >= *to) return std::nullopt;
  return std::pair<int, int>{*from, *to};
}

std::optional<std::pair<int, int>> ReadHourRange(Ctx& ctx, const YAML::Node& n, const std::string& path) {
  return ReadParsed(ctx, n, path, "a time range", "a time range such as \"08:30-12:00\" (from before to)",
                    ParseHourRange);
}

// "2026-10-01" -> days since 1970-01-01.
std::optional<int64_t> ParseLocalDate(std::string_view s) {
  if (s.size() != 10 || s[4] != '-' || s[7] != '-') return std::nullopt;
  auto y = FromChars<int>(s.substr(0, 4));
  auto m = FromChars<int>(s.substr(5, 2));
  auto d = FromChars<int>(s.substr(8, 2));
  if (!y || !m || !d || *m < 1 || *m > 12 || *d < 1 || *d > 31) return std::nullopt;
  auto ms = ParseRfc3339Ms(std::string(s) + "T00:00:00Z");
  if (!ms) return std::nullopt;
  return *ms / 86400000;
}

std::optional<int64_t> ReadLocalDate(Ctx& ctx, const YAML::Node& n, const std::string& path) {
  return ReadParsed(ctx, n, path, "a date", "a date such as 2026-10-01", ParseLocalDate);
}

const std::vector<std::pair<std::string, SlaStage>>& StageWords() {
  static const std::vector<std::pair<std::string, SlaStage>> words = {
      {"acknowledge", SlaStage::kAcknowledge}, {"arrive", SlaStage::kArrive}, {"handle", SlaStage::kHandle},
      {"verify", SlaStage::kVerify},           {"close", SlaStage::kClose}};
  return words;
}

using PriorityLimits = std::map<Priority, SlaLimit>;

const KeyTable<PriorityLimits>& PriorityLimitKeys() {
  using K = Keys<PriorityLimits>;
  auto row = [](const char* name, Priority p) {
    return K::template Scalar<SlaLimit>(
        name, "time limit", kOptional, [p](PriorityLimits& m) -> SlaLimit& { return m[p]; }, &ReadSlaLimit);
  };
  static const KeyTable<PriorityLimits> t = {row("urgent", Priority::kUrgent), row("high", Priority::kHigh),
                                             row("normal", Priority::kNormal), row("low", Priority::kLow)};
  return t;
}

const KeyTable<SlaRule>& SlaRuleKeys() {
  using K = Keys<SlaRule>;
  static const KeyTable<SlaRule> t = {
      K::Str("category", &SlaRule::category),
      K::Prio("priority", [](SlaRule& r) -> std::optional<Priority>& { return r.priority; }),
      K::Choice<SlaStage>("stage", &SlaRule::stage, StageWords()),
      K::Scalar<SlaLimit>("limit", "time limit", kRequired, &SlaRule::limit, &ReadSlaLimit),
  };
  return t;
}

const KeyTable<WorkCalendarOptions>& CalendarKeys() {
  using K = Keys<WorkCalendarOptions>;
  static const KeyTable<WorkCalendarOptions> t = {
      {"workdays", "list of weekdays", false,
       [](Ctx& ctx, const YAML::Node& n, const std::string& path, WorkCalendarOptions& o) {
         static const std::vector<std::pair<std::string, int>> days = {
             {"mon", 0}, {"tue", 1}, {"wed", 2}, {"thu", 3}, {"fri", 4}, {"sat", 5}, {"sun", 6}};
         o.workdays.fill(false);
         ForEachItem(ctx, n, path, [&](const YAML::Node& item, const std::string& ip) {
           if (auto d = ReadWord(ctx, item, ip, days)) o.workdays[static_cast<size_t>(*d)] = true;
         });
       }},
      {"hours", "list of time ranges", false,
       [](Ctx& ctx, const YAML::Node& n, const std::string& path, WorkCalendarOptions& o) {
         o.hours.clear();
         ForEachItem(ctx, n, path, [&](const YAML::Node& item, const std::string& ip) {
           auto r = ReadHourRange(ctx, item, ip);
           if (!r) return;
           if (!o.hours.empty() && r->first < o.hours.back().second) {
             ctx.Error(ip, LineOf(item), "ranges must be in order and must not overlap");
             return;
           }
           o.hours.push_back(*r);
         });
       }},
      K::ListOf<int64_t>("holidays", "list of dates", &WorkCalendarOptions::holidays, &ReadLocalDate),
      K::ListOf<int64_t>("extra_workdays", "list of dates", &WorkCalendarOptions::extra_workdays, &ReadLocalDate),
  };
  return t;
}

Check<double> Ratio() {
  return [](const double& v) { return v > 0 && v <= 2 ? std::string() : "must be within (0, 2], got " + Num(v); };
}

const KeyTable<SlaOptions>& SlaKeys() {
  using K = Keys<SlaOptions>;
  auto stage = [](const char* name, SlaStage st) {
    return K::Section<PriorityLimits>(name, [st](SlaOptions& o) -> PriorityLimits& { return o.by_priority[st]; },
                                      &PriorityLimitKeys);
  };
  static const KeyTable<SlaOptions> t = {
      stage("acknowledge", SlaStage::kAcknowledge),
      stage("arrive", SlaStage::kArrive),
      stage("handle", SlaStage::kHandle),
      stage("verify", SlaStage::kVerify),
      stage("close", SlaStage::kClose),
      K::FreeMap<decltype(&SlaOptions::handle_by_category), SlaLimit>(
          "handle_by_category", "map of time limits", &SlaOptions::handle_by_category, &ReadSlaLimit),
      K::List<SlaRule>("limits", &SlaOptions::limits, &SlaRuleKeys),
      K::StrList("wall_clock_categories", &SlaOptions::wall_clock_categories),
      K::Bool("urgent_wall_clock", &SlaOptions::urgent_wall_clock),
      K::Number("warning_ratio", &SlaOptions::warning_ratio, kOptional, Ratio()),
      K::Number("breach_ratio", &SlaOptions::breach_ratio, kOptional, Ratio()),
      K::Section<WorkCalendarOptions>("calendar", &SlaOptions::calendar, &CalendarKeys),
  };
  return t;
}

const KeyTable<EscalationLevel>& EscalationLevelKeys() {
  using K = Keys<EscalationLevel>;
  static const KeyTable<EscalationLevel> t = {
      K::Str("name", &EscalationLevel::name, kRequired, NonEmpty()),
      K::Choice<SlaStage>("stage", &EscalationLevel::stage, StageWords()),
      K::Scalar<int64_t>("after", "duration", kOptional, &EscalationLevel::after_ms, &ReadSignedDuration),
      K::Str("target", &EscalationLevel::target, kRequired, NonEmpty()),
  };
  return t;
}

const KeyTable<EscalationOptions>& EscalationKeys() {
  using K = Keys<EscalationOptions>;
  static const KeyTable<EscalationOptions> t = {
      {"levels", "list of maps", false,
       [](Ctx& ctx, const YAML::Node& n, const std::string& path, EscalationOptions& o) {
         o.levels.clear();  // the config's levels replace the defaults
         ForEachItem(ctx, n, path, [&](const YAML::Node& item, const std::string& ip) {
           EscalationLevel l;
           ReadMap<EscalationLevel>(ctx, item, ip, EscalationLevelKeys(), l);
           o.levels.push_back(std::move(l));
         });
       }},
      K::Int("max_returns", &EscalationOptions::max_returns, 1, 100),
      K::Int("max_reworks", &EscalationOptions::max_reworks, 1, 100),
      K::Str("forced_target", &EscalationOptions::forced_target, kOptional, NonEmpty()),
      K::Int("ping_pong", &EscalationOptions::ping_pong_returns, 1, 100),
  };
  return t;
}

Check<double> PositiveSpeed() {
  return [](const double& v) {
    return v > 0 && v <= 500 ? std::string() : "a speed in km/h must be within (0, 500], got " + Num(v);
  };
}

const KeyTable<DispatchOptions>& VerificationKeys() {
  using K = Keys<DispatchOptions>;
  static const KeyTable<DispatchOptions> t = {
      K::Duration("sensor_normal_for", &DispatchOptions::sensor_normal_for_ms),
      K::Duration("relapse_within", &DispatchOptions::relapse_within_ms),
      K::StrList("confirm_channels", &DispatchOptions::confirm_channels),
  };
  return t;
}

const KeyTable<DispatchOptions>& DispatchKeys() {
  using K = Keys<DispatchOptions>;
  static const KeyTable<DispatchOptions> t = {
      K::Number("default_speed", &DispatchOptions::default_speed_kmh, kOptional, PositiveSpeed(), "km/h"),
      K::FreeMap<decltype(&DispatchOptions::speed_kmh), double>("speeds", "map of km/h", &DispatchOptions::speed_kmh,
                                                               &ReadNumber, PositiveSpeed()),
      K::Int("alternatives", &DispatchOptions::alternatives, 0, 10),
      K::Duration("position_max_age", &DispatchOptions::position_max_age_ms, kOptional, PositiveMs()),
      K::Group("verification", &VerificationKeys),
  };
  return t;
}

const KeyTable<KpiOptions>& KpiKeys() {
  using K = Keys<KpiOptions>;
  static const KeyTable<KpiOptions> t = {
      {"weights", "map of numbers", false,
       [](Ctx& ctx, const YAML::Node& n, const std::string& path, KpiOptions& o) {
         o.weights.clear();  // the config's weights replace the defaults
         K::FreeMap<decltype(&KpiOptions::weights), double>("weights", "", &KpiOptions::weights, &ReadNumber,
                                                             InRange(-100, 100, "a weight"))
             .read(ctx, n, path, o);
       }},
  };
  return t;
}

const KeyTable<RulesOptions>& MergeKeys() {
  using K = Keys<RulesOptions>;
  static const KeyTable<RulesOptions> t = {
      K::Duration("window", &RulesOptions::merge_window_ms, kOptional, PositiveMs()),
      K::Number("radius_m", &RulesOptions::merge_radius_m, kOptional, InRange(0, 100000, "radius_m")),
  };
  return t;
}

const KeyTable<EventTimeOptions>& EventTimeKeys() {
  using KE = Keys<EventTimeOptions>;
  static const KeyTable<EventTimeOptions> t = {
      KE::Duration("allowed_lateness", &EventTimeOptions::allowed_lateness_ms),
      {"late_events", "drop | apply", false,
       [](Ctx& ctx, const YAML::Node& n, const std::string& path, EventTimeOptions& o) {
         auto v = ReadString(ctx, n, path);
         if (!v) return;
         if (*v == "drop") o.late_policy = LatePolicy::kDrop;
         else if (*v == "apply") o.late_policy = LatePolicy::kApply;
         else ctx.Error(path, LineOf(n), "expected drop or apply, got '" + *v + "'" + Suggest(*v, {"drop", "apply"}));
       }},
      KE::Duration("idle_timeout", &EventTimeOptions::idle_timeout_ms, kOptional, PositiveMs()),
  };
  return t;
}

const KeyTable<CameraOptions>& CameraMotionKeys() {
  using K = Keys<CameraOptions>;
  static const KeyTable<CameraOptions> t = {
      K::Int("threshold", &CameraOptions::motion_threshold, 1, 255),
      K::Number("alpha", &CameraOptions::motion_alpha, kOptional, InRange(0.0001, 1, "alpha")),
      K::Number("recalibrate", &CameraOptions::recalibrate_ratio, kOptional, InRange(0.05, 1, "recalibrate")),
  };
  return t;
}
const KeyTable<CameraOptions>& CameraStationaryKeys() {
  using K = Keys<CameraOptions>;
  static const KeyTable<CameraOptions> t = {
      K::Duration("dwell", &CameraOptions::stationary_dwell_ms, kOptional, PositiveMs()),
      K::Number("match", &CameraOptions::stationary_match, kOptional, InRange(0.1, 1, "match")),
  };
  return t;
}
const KeyTable<CameraOptions>& CameraCrowdKeys() {
  using K = Keys<CameraOptions>;
  static const KeyTable<CameraOptions> t = {
      K::Duration("dwell", &CameraOptions::crowd_dwell_ms, kOptional, PositiveMs()),
      K::Number("occupancy", &CameraOptions::crowd_occupancy, kOptional, InRange(0.01, 1, "occupancy")),
      K::Int("min_people", &CameraOptions::crowd_min_people, 0, 1000),
  };
  return t;
}
const KeyTable<CameraOptions>& CameraCongestionKeys() {
  using K = Keys<CameraOptions>;
  static const KeyTable<CameraOptions> t = {
      K::Duration("dwell", &CameraOptions::congestion_dwell_ms, kOptional, PositiveMs()),
      K::Number("max_speed", &CameraOptions::congestion_max_speed, kOptional, InRange(0, 10, "max_speed")),
      K::Number("occupancy", &CameraOptions::congestion_occupancy, kOptional, InRange(0.01, 1, "occupancy")),
  };
  return t;
}
const KeyTable<CameraOptions>& CameraWrongWayKeys() {
  using K = Keys<CameraOptions>;
  static const KeyTable<CameraOptions> t = {
      K::Duration("dwell", &CameraOptions::wrong_way_dwell_ms, kOptional, PositiveMs()),
      K::Number("min_speed", &CameraOptions::wrong_way_min_speed, kOptional, InRange(0.001, 10, "min_speed")),
  };
  return t;
}
const KeyTable<CameraOptions>& CameraFireKeys() {
  using K = Keys<CameraOptions>;
  static const KeyTable<CameraOptions> t = {
      K::Duration("dwell", &CameraOptions::fire_dwell_ms, kOptional, PositiveMs()),
  };
  return t;
}
const KeyTable<CameraOptions>& CameraTamperKeys() {
  using K = Keys<CameraOptions>;
  static const KeyTable<CameraOptions> t = {
      K::Duration("dwell", &CameraOptions::tamper_dwell_ms, kOptional, PositiveMs()),
      K::Duration("no_frames", &CameraOptions::no_frames_ms, kOptional, PositiveMs()),
  };
  return t;
}
const KeyTable<CameraOptions>& CameraSnapshotKeys() {
  using K = Keys<CameraOptions>;
  static const KeyTable<CameraOptions> t = {
      K::Int("keep", &CameraOptions::snapshots_per_camera, 1, 100000),
      K::Duration("max_age", &CameraOptions::snapshot_max_age_ms, kOptional, PositiveMs()),
  };
  return t;
}

const KeyTable<CameraOptions>& CameraOptionKeys() {
  using K = Keys<CameraOptions>;
  static const KeyTable<CameraOptions> t = {
      K::Number("fps", &CameraOptions::fps, kOptional, InRange(0.1, 60, "fps")),
      K::Int("analysis_width", &CameraOptions::analysis_width, 80, 4096),
      K::Int("max_frame_bytes", &CameraOptions::max_frame_bytes, 1024, 64 << 20),
      K::Duration("max_lag", &CameraOptions::max_lag_ms, kOptional, PositiveMs()),
      K::Int("warmup", &CameraOptions::warmup_frames, 1, 10000),
      K::Duration("cooldown", &CameraOptions::cooldown_ms, kOptional, PositiveMs()),
      K::FreeMap<decltype(&CameraOptions::categories), std::string>(
          "categories", "map of detector -> category", &CameraOptions::categories, &ReadString, NonEmpty()),
      K::Group("motion", &CameraMotionKeys),
      K::Group("stationary", &CameraStationaryKeys),
      K::Group("crowd", &CameraCrowdKeys),
      K::Group("congestion", &CameraCongestionKeys),
      K::Group("wrong_way", &CameraWrongWayKeys),
      K::Group("fire", &CameraFireKeys),
      K::Group("tamper", &CameraTamperKeys),
      K::Group("snapshots", &CameraSnapshotKeys),
  };
  return t;
}

// api.tokens[].sha256: the hex SHA-256 of a token (never the token itself).
Check<std::string> Sha256Hex() {
  return [](const std::string& s) {
    const bool hex = std::all_of(s.begin(), s.end(), [](char c) {
      return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
    });
    if (s.size() == 64 && hex) return std::string();
    return "expected the 64 hex digits of the token's SHA-256 (printf %s \"$TOKEN\" | sha256sum), got " +
           std::to_string(s.size()) + (hex ? " hex digits" : " characters that are not all hex digits") +
           "; never put the token itself in the config";
  };
}

// api.cors_origins[]: "*" or an origin as browsers send it: scheme://host[:port], no path.
Check<std::string> CorsOrigin() {
  return [](const std::string& s) {
    if (s == "*") return std::string();
    const size_t scheme = s.find("://");
    const std::string proto = scheme == std::string::npos ? "" : s.substr(0, scheme);
    const std::string host = scheme == std::string::npos ? "" : s.substr(scheme + 3);
    const bool ok = (proto == "http" || proto == "https") && !host.empty() &&
                    std::all_of(host.begin(), host.end(), [](char c) {
                      return IsIdChar(c) || c == ':' || c == '[' || c == ']';
                    });
    return ok ? std::string()
              : "expected an origin such as https://console.example.org or http://127.0.0.1:8080 (no path), or *, "
                "got '" + s + "'";
  };
}

template <typename T>
Check<T> AtLeast(T lo, const char* what) {
  return [lo, what](const T& v) {
    return v >= lo ? std::string() : std::string(what) + " must be at least " + std::to_string(lo);
  };
}
Check<int64_t> MsWithin(int64_t lo, int64_t hi) {
  return [lo, hi](const int64_t& v) {
    return v >= lo && v <= hi ? std::string()
                              : "must be within [" + std::to_string(lo) + "ms, " + std::to_string(hi) + "ms], got " +
                                    std::to_string(v) + "ms";
  };
}

const KeyTable<ApiOptions::Token>& ApiTokenKeys() {
  using K = Keys<ApiOptions::Token>;
  using T = ApiOptions::Token;
  static const KeyTable<T> t = {
      K::Str("name", &T::name, kRequired, IsId()),
      K::Str("sha256", &T::sha256, kRequired, Sha256Hex()),
      [] {
        auto role = K::Choice<Role>("role", &T::role,
                                    {{"viewer", Role::kViewer},
                                     {"operator", Role::kOperator},
                                     {"supervisor", Role::kSupervisor},
                                     {"admin", Role::kAdmin}});
        role.required = true;
        return role;
      }(),
      K::StrList("districts", &T::districts, IsId()),
  };
  return t;
}

const KeyTable<ApiOptions>& ApiKeys() {
  using K = Keys<ApiOptions>;
  static const KeyTable<ApiOptions> t = {
      K::Str("listen", &ApiOptions::listen, kOptional, HostPort()),
      K::List<ApiOptions::Token>("tokens", &ApiOptions::tokens, &ApiTokenKeys),
      K::StrList("cors_origins", &ApiOptions::cors_origins, CorsOrigin()),
      K::Str("web_root", &ApiOptions::web_root),
      K::Int("threads", &ApiOptions::threads, 1, 64),
      K::Duration("action_wait", &ApiOptions::action_wait_ms, kOptional, MsWithin(0, 60000)),
      K::Duration("request_timeout", &ApiOptions::request_timeout_ms, kOptional, MsWithin(100, 3600000)),
      K::Int("max_body_bytes", &ApiOptions::max_body_bytes, 1024, int64_t{64} << 20),
      K::Int("max_header_bytes", &ApiOptions::max_header_bytes, 1024, int64_t{1} << 20),
      K::Int("max_connections", &ApiOptions::max_connections, 1, 1000000),
      K::Int("max_streams", &ApiOptions::max_streams, 0, 100000),
      K::Int("max_streams_per_token", &ApiOptions::max_streams_per_token, 1, 100000),
      K::Int("stream_queue_limit", &ApiOptions::stream_queue_limit, 1, 1000000),
      K::Duration("heartbeat", &ApiOptions::heartbeat_ms, kOptional, MsWithin(1000, 3600000)),
      K::Int("stream_retention", &ApiOptions::stream_retention, 0, int64_t{1} << 32),
      K::Bool("access_log", &ApiOptions::access_log),
  };
  return t;
}


const KeyTable<Root>& RootKeys() {
  using K = Keys<Root>;
  static const KeyTable<Root> t = {
      K::Section<KafkaOptions>("kafka", [](Root& r) -> KafkaOptions& { return r.cfg.kafka; }, &KafkaKeys),
      K::Section<StorageOptions>("storage", [](Root& r) -> StorageOptions& { return r.cfg.storage; },
                                 &StorageKeys),
      K::Section<ScaleOptions>("scale", [](Root& r) -> ScaleOptions& { return r.cfg.scale; }, &ScaleKeys),
      K::Section<IngestOptions>("ingest", [](Root& r) -> IngestOptions& { return r.cfg.ingest; }, &IngestKeys),
      K::Group("city", &CityKeys, kRequired),
      RulesKey(),
      K::Section<RulesOptions>("merge", [](Root& r) -> RulesOptions& { return r.cfg.rules; }, &MergeKeys),
      K::Section<EventTimeOptions>("event_time", [](Root& r) -> EventTimeOptions& { return r.cfg.event_time; },
                                   &EventTimeKeys),
      K::Section<SlaOptions>("sla", [](Root& r) -> SlaOptions& { return r.cfg.sla; }, &SlaKeys),
      K::Section<ApiOptions>("api", [](Root& r) -> ApiOptions& { return r.cfg.api; }, &ApiKeys),
      K::Section<EscalationOptions>("escalation", [](Root& r) -> EscalationOptions& { return r.cfg.escalation; },
                                    &EscalationKeys),
      K::Section<DispatchOptions>("dispatch", [](Root& r) -> DispatchOptions& { return r.cfg.dispatch; },
                                  &DispatchKeys),
      K::Section<KpiOptions>("kpi", [](Root& r) -> KpiOptions& { return r.cfg.kpi; }, &KpiKeys),
      K::Section<CameraOptions>("camera", [](Root& r) -> CameraOptions& { return r.cfg.camera; }, &CameraOptionKeys),
  };
  return t;
}

// ---------------------------------------------------------------------------
// Checks across keys

// Reports the second and later uses of an id. items: (id, path of the item).
void CheckUnique(Ctx& ctx, const std::vector<std::pair<std::string, std::string>>& items, const std::string& key,
                 const std::string& what) {
  std::map<std::string, std::string> first;
  for (const auto& [id, path] : items) {
    const std::string kp = Join(path, key);
    if (id.empty() || !ctx.Ok(kp)) continue;
    auto [it, fresh] = first.emplace(id, path);
    if (!fresh) ctx.Error(kp, "duplicate " + what + " '" + id + "' (first at " + it->second + ")");
  }
}

std::vector<std::string> Names(const std::set<std::string>& s) { return {s.begin(), s.end()}; }

// Reports kp when id is not in known.
void CheckRef(Ctx& ctx, const std::string& kp, const std::string& id, const std::set<std::string>& known,
              const std::string& what) {
  if (!ctx.Ok(kp) || id.empty() || known.count(id)) return;
  ctx.Error(kp, "unknown " + what + " '" + id + "'" + Suggest(id, Names(known)));
}

// api.tokens: names and hashes unique, districts of the city; hashes stored lower-case.
void CheckApi(Ctx& ctx, ApiOptions& api, const std::set<std::string>& districts) {
  std::vector<std::pair<std::string, std::string>> names, hashes;
  for (size_t i = 0; i < api.tokens.size(); ++i) {
    ApiOptions::Token& tok = api.tokens[i];
    const std::string p = Index("api.tokens", i);
    std::transform(tok.sha256.begin(), tok.sha256.end(), tok.sha256.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    names.emplace_back(tok.name, p);
    hashes.emplace_back(tok.sha256, p);
    for (size_t j = 0; j < tok.districts.size(); ++j) {
      CheckRef(ctx, Index(Join(p, "districts"), j), tok.districts[j], districts, "district");
    }
  }
  CheckUnique(ctx, names, "name", "token name");
  CheckUnique(ctx, hashes, "sha256", "token hash (two tokens are the same token)");
}

// Zones, lines and camera.categories: ids unique per camera, every category
// a zone, a line or an analysed camera's tamper check raises in the catalogue.
void CheckCameras(Ctx& ctx, const Config& cfg, const std::set<std::string>& categories) {
  const CameraOptions& opt = cfg.camera;
  std::set<std::string> detectors = {"tamper"};
  for (ZoneDetector d : kAllZoneDetectors) detectors.insert(ZoneDetectorName(d));
  for (const auto& [det, cat] : opt.categories) {
    CheckRef(ctx, Join("camera.categories", det), det, detectors, "detector");
  }
  bool analysed = false;
  for (size_t i = 0; i < cfg.city.cameras.size(); ++i) {
    const Camera& cam = cfg.city.cameras[i];
    const std::string cp = Index("city.cameras", i);
    std::vector<std::pair<std::string, std::string>> ids;
    for (size_t j = 0; j < cam.zones.size(); ++j) {
      const CameraZone& z = cam.zones[j];
      const std::string zp = Index(Join(cp, "zones"), j);
      ids.emplace_back(z.id, zp);
      analysed = analysed || !z.detectors.empty();
      if (z.detectors.empty() && ctx.Line(Join(zp, "detectors")) == 0) {
        ctx.Error(Join(zp, "detectors"), ctx.Line(zp), "a zone needs 'detectors', e.g. [stationary]");
      }
      for (ZoneDetector d : z.detectors) {
        if (!z.category.empty()) break;
        auto it = opt.categories.find(ZoneDetectorName(d));
        if (it != opt.categories.end() && !categories.count(it->second)) {
          ctx.Error(Join(zp, "detectors"), "detector " + std::string(ZoneDetectorName(d)) + " raises category '" +
                                               it->second + "' (camera.categories), which is not in city.catalogue;" +
                                               " add it or give the zone a 'category'");
        }
      }
      CheckRef(ctx, Join(zp, "category"), z.category, categories, "category");
      const bool wrong_way = std::count(z.detectors.begin(), z.detectors.end(), ZoneDetector::kWrongWay) > 0;
      if (wrong_way && z.direction == ImagePoint{0, 0} && ctx.Ok(Join(zp, "direction"))) {
        ctx.Error(Join(zp, "direction"), ctx.Line(zp), "a wrong_way zone needs the lane's 'direction', e.g. [1, 0]");
      }
      if (z.schedule && z.schedule->first == z.schedule->second) {
        ctx.Error(Join(zp, "schedule"), "an empty window: from and to are equal (leave schedule out for always)");
      }
    }
    for (size_t j = 0; j < cam.lines.size(); ++j) {
      const CameraLine& l = cam.lines[j];
      const std::string lp = Index(Join(cp, "lines"), j);
      ids.emplace_back(l.id, lp);
      CheckRef(ctx, Join(lp, "category"), l.category, categories, "category");
      if (l.a == l.b && ctx.Ok(Join(lp, "to"))) ctx.Error(Join(lp, "to"), "the line's ends are the same point");
    }
    CheckUnique(ctx, ids, "id", "zone or line id in the camera");
  }
  auto tamper = opt.categories.find("tamper");
  if (analysed && tamper != opt.categories.end() && !categories.count(tamper->second)) {
    ctx.Error("camera.categories.tamper", "tamper checks raise category '" + tamper->second +
                                              "', which is not in city.catalogue; add it or set camera.categories.tamper");
  }
}

struct Flat {
  std::vector<std::string> district_paths, street_paths, community_paths;
};

Flat Flatten(Root& root) {
  Flat f;
  CityOptions& city = root.cfg.city;
  for (size_t i = 0; i < root.districts.size(); ++i) {
    DistrictY& d = root.districts[i];
    const std::string dp = Index("city.districts", i);
    city.districts.push_back(d.d);
    f.district_paths.push_back(dp);
    for (size_t j = 0; j < d.streets.size(); ++j) {
      StreetY& s = d.streets[j];
      const std::string sp = Index(Join(dp, "streets"), j);
      s.s.district_id = d.d.id;
      city.streets.push_back(s.s);
      f.street_paths.push_back(sp);
      for (size_t k = 0; k < s.communities.size(); ++k) {
        Community c = s.communities[k];
        c.street_id = s.s.id;
        c.district_id = d.d.id;
        city.communities.push_back(c);
        f.community_paths.push_back(Index(Join(sp, "communities"), k));
      }
    }
  }
  return f;
}

void CheckGrid(Ctx& ctx, const CityOptions& city, const Flat& f) {
  const GridGeometry& g = city.grid;
  if (!ctx.Ok("city.grid") || !ctx.Ok("city.grid.rows") || !ctx.Ok("city.grid.cols") || g.rows <= 0 ||
      g.cols <= 0) {
    return;  // already reported; coverage means nothing without a grid
  }
  std::vector<int> owner(static_cast<size_t>(g.rows * g.cols), -1);
  bool all_placed = true;  // every community was read and lies inside the grid
  for (size_t i = 0; i < city.communities.size(); ++i) {
    const Community& c = city.communities[i];
    const std::string& p = f.community_paths[i];
    if (!ctx.Ok(p) || !ctx.Ok(Join(p, "rows")) || !ctx.Ok(Join(p, "cols"))) {
      all_placed = false;
      continue;
    }
    bool ok = true;
    auto range = [&](const char* key, int from, int to, int n, const char* what) {
      if (from > to) {
        ctx.Error(Join(p, key), "from " + std::to_string(from) + " is after to " + std::to_string(to));
        ok = false;
      } else if (to >= n) {
        ctx.Error(Join(p, key), std::string("reaches ") + what + " " + std::to_string(to) + " but the grid has " +
                                    std::to_string(n) + " " + what + "s (0.." + std::to_string(n - 1) + ")");
        ok = false;
      }
    };
    range("rows", c.row_from, c.row_to, g.rows, "row");
    range("cols", c.col_from, c.col_to, g.cols, "col");
    if (!ok) {
      all_placed = false;
      continue;
    }
    std::map<int, std::pair<int, std::string>> clashes;  // other community -> (cells, first cell)
    for (int r = c.row_from; r <= c.row_to; ++r) {
      for (int col = c.col_from; col <= c.col_to; ++col) {
        int& o = owner[static_cast<size_t>(r * g.cols + col)];
        if (o < 0) {
          o = static_cast<int>(i);
          continue;
        }
        auto& clash = clashes[o];
        if (clash.first++ == 0) clash.second = "(" + std::to_string(r) + "," + std::to_string(col) + ")";
      }
    }
    for (const auto& [other, clash] : clashes) {
      ctx.Error(p, "overlaps community '" + city.communities[static_cast<size_t>(other)].id + "' (" +
                       f.community_paths[static_cast<size_t>(other)] + ") in " + std::to_string(clash.first) +
                       " cell(s), first " + clash.second + "; every cell must belong to exactly one community");
    }
  }
  if (!all_placed || !ctx.Ok("city.districts")) return;  // holes would only echo those errors
  std::vector<std::string> holes;
  for (size_t i = 0; i < owner.size(); ++i) {
    if (owner[i] < 0) {
      holes.push_back("(" + std::to_string(static_cast<int>(i) / g.cols) + "," +
                      std::to_string(static_cast<int>(i) % g.cols) + ")");
    }
  }
  if (!holes.empty()) {
    std::string list;
    for (size_t i = 0; i < holes.size() && i < 10; ++i) list += (i ? ", " : "") + holes[i];
    if (holes.size() > 10) list += ", ...";
    ctx.Error("city.grid", std::to_string(holes.size()) + " grid cell(s) (row,col) belong to no community: " + list);
  }
}

bool GridUsable(Ctx& ctx, const CityOptions& city) {
  return ctx.Ok("city.grid") && ctx.Ok("city.grid.rows") && ctx.Ok("city.grid.cols") &&
         ctx.Ok("city.grid.origin.lat") && ctx.Ok("city.grid.origin.lon") &&
         ctx.Ok("city.grid.cell_size_m") && city.grid.rows > 0 && city.grid.cols > 0;
}

void CheckInsideGrid(Ctx& ctx, const GridIndex& grid, const std::string& p, LatLon pos, const std::string& what) {
  if (!ctx.Ok(p) || !ctx.Ok(Join(p, "lat")) || !ctx.Ok(Join(p, "lon"))) return;
  if (grid.Contains(pos)) return;
  ctx.Error(Join(p, "lat"), what + " position (" + Num(pos.lat) + ", " + Num(pos.lon) + ") lies outside the grid");
}

std::string LevelWord(ThresholdDirection d) { return d == ThresholdDirection::kAbove ? "above" : "below"; }

// What the rule checks need to know about the rest of the config.
struct RuleRefs {
  std::set<std::string> kinds, categories, cameras, device_ids;
  std::map<std::string, const Device*> devices;
};

// "above"/"below" or "rise"/"fall": exactly one of the pair. Sets dir and
// level and returns true when it is so, else reports at p.
bool OneLevel(Ctx& ctx, const std::string& p, const std::optional<double>& up, const std::optional<double>& down,
              const char* up_key, const char* down_key, const std::string& what, ThresholdDirection* dir,
              double* level) {
  if (!ctx.Ok(Join(p, up_key)) || !ctx.Ok(Join(p, down_key))) return false;
  if (up && down) {
    ctx.Error(Join(p, down_key), std::string("set exactly one of '") + up_key + "' or '" + down_key + "', not both");
    return false;
  }
  if (!up && !down) {
    ctx.Error(p, what + " needs exactly one of '" + up_key + ": X' or '" + down_key + ": X'");
    return false;
  }
  *dir = up ? ThresholdDirection::kAbove : ThresholdDirection::kBelow;
  *level = up ? *up : *down;
  return true;
}

// devices[] of a sensor rule: known devices of the rule's kind ("" kind: any).
void CheckRuleDevices(Ctx& ctx, const std::string& p, const std::vector<std::string>& ids, const std::string& kind,
                      const RuleRefs& refs) {
  for (size_t i = 0; i < ids.size(); ++i) {
    const std::string dp = Index(Join(p, "devices"), i);
    if (!ctx.Ok(dp) || ids[i].empty()) continue;
    auto it = refs.devices.find(ids[i]);
    if (it == refs.devices.end()) {
      ctx.Error(dp, "unknown device '" + ids[i] + "' (not in city.devices)" + Suggest(ids[i], Names(refs.device_ids)));
    } else if (!kind.empty() && ctx.Ok(Join(p, "sensor")) && it->second->kind != kind) {
      ctx.Error(dp, "device '" + ids[i] + "' is a " + it->second->kind + " sensor, not " + kind);
    }
  }
}

// overrides.<device>: known devices of the rule's kind; visit(device, override, path) for each usable one.
template <typename Visit>
void ForEachOverride(Ctx& ctx, const RuleY& ry, const std::string& kind, const RuleRefs& refs, Visit visit) {
  for (const auto& [dev, o] : ry.overrides) {
    const std::string op = Join(Join(ry.path, "overrides"), dev);
    if (!ctx.Ok(op)) continue;
    auto it = refs.devices.find(dev);
    if (it == refs.devices.end()) {
      ctx.Error(op, "overrides unknown device '" + dev + "' (not in city.devices)" +
                        Suggest(dev, Names(refs.device_ids)));
      continue;
    }
    if (!kind.empty() && ctx.Ok(Join(ry.path, "sensor")) && it->second->kind != kind) {
      ctx.Error(op, "device '" + dev + "' is a " + it->second->kind + " sensor, not " + kind);
      continue;
    }
    visit(dev, o, op);
  }
}

// An override that names the other direction of the rule's level.
bool WrongDirection(Ctx& ctx, const std::string& op, ThresholdDirection dir, const std::optional<double>& up,
                    const std::optional<double>& down, const char* up_key, const char* down_key) {
  const bool above = dir == ThresholdDirection::kAbove;
  if (!(above ? down : up)) return false;
  ctx.Error(Join(op, above ? down_key : up_key), std::string("the rule uses '") + (above ? up_key : down_key) +
                                                     "'; override it with '" + (above ? up_key : down_key) + "'");
  return true;
}

void CheckThresholdRule(Ctx& ctx, RuleY& ry, const RuleRefs& refs, RulesOptions& out) {
  const std::string& p = ry.path;
  ThresholdRule& r = ry.threshold;
  CheckRef(ctx, Join(p, "sensor"), r.sensor_kind, refs.kinds, "sensor kind");
  if (!OneLevel(ctx, p, ry.above, ry.below, "above", "below", "a threshold rule", &r.direction, &r.raise)) return;
  r.clear = ry.clear.value_or(r.raise);
  const bool above = r.direction == ThresholdDirection::kAbove;
  // "" when clear lies on the normal side of raise, else what is wrong.
  auto wrong_side = [above](double clear, double raise) {
    const bool normal = above ? clear <= raise : clear >= raise;
    return normal ? std::string() : "clear " + Num(clear) + " must be " + (above ? "<= " : ">= ") + Num(raise);
  };
  if (ry.clear && ctx.Ok(Join(p, "clear"))) {
    if (auto problem = wrong_side(r.clear, r.raise); !problem.empty()) {
      ctx.Error(Join(p, "clear"), problem + " (the normal side of '" + LevelWord(r.direction) + "')");
    }
  }
  if (r.active_hours && r.active_hours->first == r.active_hours->second) {
    ctx.Error(Join(p, "active_hours"), "an empty window: from and to are equal (leave active_hours out for always)");
  }
  CheckRuleDevices(ctx, p, r.devices, r.sensor_kind, refs);
  ForEachOverride(ctx, ry, r.sensor_kind, refs, [&](const std::string& dev, const OverrideY& o, const std::string& op) {
    if (WrongDirection(ctx, op, r.direction, o.above, o.below, "above", "below")) return;
    ThresholdOverride to;
    to.raise = above ? o.above : o.below;
    to.clear = o.clear;
    to.min_duration_ms = o.for_ms;
    // As for the rule, an override's clear defaults to its own raise level
    // (detect/ and the simulator read it that way).
    const double raise = to.raise.value_or(r.raise);
    if (to.clear && ctx.Ok(Join(op, "clear"))) {
      if (auto problem = wrong_side(*to.clear, raise); !problem.empty()) {
        ctx.Error(Join(op, "clear"), problem + (to.raise ? "" : " (the rule's level)"));
        return;
      }
    }
    r.overrides[dev] = to;
  });
  out.threshold.push_back(r);
}

Check<double> Positive(const char* what) {
  return [what](const double& v) {
    return v > 0 ? std::string() : std::string(what) + " must be greater than 0, got " + Num(v);
  };
}

void CheckRateRule(Ctx& ctx, RuleY& ry, const RuleRefs& refs, RulesOptions& out) {
  const std::string& p = ry.path;
  RateRule& r = ry.rate;
  CheckRef(ctx, Join(p, "sensor"), r.sensor_kind, refs.kinds, "sensor kind");
  if (!OneLevel(ctx, p, ry.rise, ry.fall, "rise", "fall", "a rate rule", &r.direction, &r.rate)) return;
  const std::string level_key = Join(p, r.direction == ThresholdDirection::kAbove ? "rise" : "fall");
  if (!Passes(ctx, Positive("the rate"), r.rate, level_key, ctx.Line(level_key))) return;
  r.clear = ry.clear.value_or(r.rate);
  if (ry.clear && ctx.Ok(Join(p, "clear")) && (r.clear < 0 || r.clear > r.rate)) {
    ctx.Error(Join(p, "clear"), "clear " + Num(r.clear) + " must be within [0, " + Num(r.rate) + "] (the rate)");
  }
  if (r.min_span_ms == 0) r.min_span_ms = r.per_ms / 2;
  if (ctx.Ok(Join(p, "min_span")) && (r.min_span_ms < 0 || r.min_span_ms > r.per_ms)) {
    ctx.Error(Join(p, "min_span"), "min_span must be within [0, per]");
  }
  CheckRuleDevices(ctx, p, r.devices, r.sensor_kind, refs);
  ForEachOverride(ctx, ry, r.sensor_kind, refs, [&](const std::string& dev, const OverrideY& o, const std::string& op) {
    if (WrongDirection(ctx, op, r.direction, o.rise, o.fall, "rise", "fall")) return;
    const std::optional<double>& v = r.direction == ThresholdDirection::kAbove ? o.rise : o.fall;
    const std::string vk = Join(op, r.direction == ThresholdDirection::kAbove ? "rise" : "fall");
    if (v && Passes(ctx, Positive("the rate"), *v, vk, ctx.Line(vk))) r.overrides[dev] = *v;
  });
  out.rate.push_back(r);
}

void CheckWindowRule(Ctx& ctx, RuleY& ry, const RuleRefs& refs, RulesOptions& out) {
  const std::string& p = ry.path;
  WindowRule& r = ry.window;
  CheckRef(ctx, Join(p, "sensor"), r.sensor_kind, refs.kinds, "sensor kind");
  const std::string wp = Join(p, "window");
  if (ry.window_type.empty()) ry.window_type = r.slide_ms > 0 ? "sliding" : "tumbling";
  if (ctx.Ok(Join(wp, "type"))) {
    if (ry.window_type == "tumbling") {
      if (r.slide_ms > 0 && r.slide_ms != r.size_ms) {
        ctx.Error(Join(wp, "slide"), "a tumbling window slides by its size; leave slide out or use type: sliding");
      }
      r.slide_ms = 0;
    } else if (ry.window_type == "sliding") {
      if (r.slide_ms <= 0 && ctx.Ok(Join(wp, "slide"))) {
        ctx.Error(wp, "a sliding window needs 'slide', e.g. slide: 1m");
      } else if (r.slide_ms > r.size_ms && ctx.Ok(Join(wp, "size"))) {
        ctx.Error(Join(wp, "slide"), "slide must not be longer than size");
      }
    } else {
      ctx.Error(Join(wp, "type"), "expected tumbling or sliding, got '" + ry.window_type + "'" +
                                      Suggest(ry.window_type, {"tumbling", "sliding"}));
    }
  }
  if (ry.percentile && r.aggregate != Aggregate::kPercentile) {
    ctx.Error(Join(p, "percentile"), "only for aggregate: percentile");
  }
  if (ry.percentile) r.percentile = *ry.percentile;
  if (!OneLevel(ctx, p, ry.above, ry.below, "above", "below", "a window rule", &r.direction, &r.level)) return;
  CheckRuleDevices(ctx, p, r.devices, r.sensor_kind, refs);
  ForEachOverride(ctx, ry, r.sensor_kind, refs, [&](const std::string& dev, const OverrideY& o, const std::string& op) {
    if (WrongDirection(ctx, op, r.direction, o.above, o.below, "above", "below")) return;
    const std::optional<double>& v = r.direction == ThresholdDirection::kAbove ? o.above : o.below;
    if (v) r.overrides[dev] = *v;
  });
  out.window.push_back(r);
}

void CheckNoSignalRule(Ctx& ctx, RuleY& ry, const RuleRefs& refs, RulesOptions& out) {
  const std::string& p = ry.path;
  NoSignalRule& r = ry.no_signal;
  for (size_t i = 0; i < r.sensor_kinds.size(); ++i) {
    CheckRef(ctx, Index(Join(p, "sensors"), i), r.sensor_kinds[i], refs.kinds, "sensor kind");
  }
  CheckRuleDevices(ctx, p, r.devices, "", refs);
  ForEachOverride(ctx, ry, "", refs, [&](const std::string& dev, const OverrideY& o, const std::string&) {
    if (o.interval_ms) r.overrides[dev] = *o.interval_ms;
  });
  out.no_signal.push_back(r);
}

void CheckCameraRule(Ctx& ctx, RuleY& ry, const RuleRefs& refs, RulesOptions& out) {
  const std::string& p = ry.path;
  CameraRule& r = ry.camera;
  if (r.labels.empty() && ctx.Ok(Join(p, "labels"))) ctx.Error(p, "a camera rule needs 'labels', e.g. [fire, smoke]");
  for (size_t i = 0; i < r.cameras.size(); ++i) {
    CheckRef(ctx, Index(Join(p, "cameras"), i), r.cameras[i], refs.cameras, "camera");
  }
  out.camera.push_back(r);
}

// Kinds whose alarms a flapping rule can watch.
bool Flaps(const std::string& kind) { return kind == "threshold" || kind == "rate" || kind == "window"; }

// Rules that refer to other rules, checked once every rule id is known.
void CheckRuleLinks(Ctx& ctx, std::vector<RuleY>& rules, const RuleRefs& refs, RulesOptions& out) {
  std::map<std::string, const RuleY*> by_id;
  for (RuleY& ry : rules) by_id.emplace(ry.Base().id, &ry);
  std::set<std::string> ids;
  for (const auto& [id, ry] : by_id) ids.insert(id);
  for (RuleY& ry : rules) {
    const std::string& p = ry.path;
    if (ry.kind == "flapping") {
      FlappingRule& r = ry.flapping;
      if (r.rules.empty() && ctx.Ok(Join(p, "rules"))) ctx.Error(p, "a flapping rule needs 'rules': the rules it watches");
      for (size_t i = 0; i < r.rules.size(); ++i) {
        const std::string rp = Index(Join(p, "rules"), i);
        CheckRef(ctx, rp, r.rules[i], ids, "rule");
        auto it = by_id.find(r.rules[i]);
        if (ctx.Ok(rp) && it != by_id.end() && !Flaps(it->second->kind)) {
          ctx.Error(rp, "rule '" + r.rules[i] + "' is a " + it->second->kind +
                            " rule; flapping watches threshold, rate and window rules");
        }
      }
      out.flapping.push_back(r);
    } else if (ry.kind == "correlation") {
      CorrelationRule& r = ry.correlation;
      if (r.when.size() < 2 && ctx.Ok(Join(p, "when"))) {
        ctx.Error(Join(p, "when"), "a correlation needs at least two members, e.g. [{rule: a}, {category: b}]");
      }
      for (size_t i = 0; i < r.when.size(); ++i) {
        const std::string mp = Index(Join(p, "when"), i);
        const CorrelationMember& m = r.when[i];
        if (!ctx.Ok(mp)) continue;
        if (m.rule.empty() == m.category.empty()) {
          ctx.Error(mp, "each member names exactly one of 'rule' or 'category'");
          continue;
        }
        CheckRef(ctx, Join(mp, "rule"), m.rule, ids, "rule");
        CheckRef(ctx, Join(mp, "category"), m.category, refs.categories, "category");
        auto it = by_id.find(m.rule);
        if (it != by_id.end() && it->second->kind == "correlation") {
          ctx.Error(Join(mp, "rule"), "a correlation cannot watch another correlation");
        }
      }
      out.correlation.push_back(r);
    }
  }
}

void CheckRules(Ctx& ctx, Root& root, const RuleRefs& refs) {
  std::vector<std::pair<std::string, std::string>> ids;
  RulesOptions& out = root.cfg.rules;
  for (RuleY& ry : root.rules) {
    RuleBase& base = ry.Base();
    ids.emplace_back(base.id, ry.path);
    CheckRef(ctx, Join(ry.path, "category"), base.category, refs.categories, "category");
    if (ry.kind == "threshold") CheckThresholdRule(ctx, ry, refs, out);
    else if (ry.kind == "rate") CheckRateRule(ctx, ry, refs, out);
    else if (ry.kind == "window") CheckWindowRule(ctx, ry, refs, out);
    else if (ry.kind == "no_signal") CheckNoSignalRule(ctx, ry, refs, out);
    else if (ry.kind == "camera") CheckCameraRule(ctx, ry, refs, out);
  }
  CheckRuleLinks(ctx, root.rules, refs, out);
  CheckUnique(ctx, ids, "id", "rule id");
}

SlaOptions DefaultSla() {
  auto wall = [](int64_t minutes) { return SlaLimit{SlaLimit::Basis::kWall, minutes * 60000}; };
  auto working_days = [](int64_t days) { return SlaLimit{SlaLimit::Basis::kWorkingDays, days}; };
  SlaOptions sla;
  sla.by_priority[SlaStage::kAcknowledge] = {{Priority::kUrgent, wall(10)},
                                             {Priority::kHigh, wall(30)},
                                             {Priority::kNormal, wall(60)},
                                             {Priority::kLow, wall(240)}};
  sla.by_priority[SlaStage::kArrive] = {{Priority::kUrgent, wall(30)},
                                        {Priority::kHigh, wall(60)},
                                        {Priority::kNormal, wall(240)},
                                        {Priority::kLow, wall(1440)}};
  sla.by_priority[SlaStage::kHandle] = {{Priority::kUrgent, wall(60)},
                                        {Priority::kHigh, wall(240)},
                                        {Priority::kNormal, wall(480)},
                                        {Priority::kLow, wall(1440)}};
  sla.by_priority[SlaStage::kVerify] = {{Priority::kUrgent, wall(60)},
                                        {Priority::kHigh, wall(60)},
                                        {Priority::kNormal, wall(120)},
                                        {Priority::kLow, working_days(1)}};
  sla.by_priority[SlaStage::kClose] = {{Priority::kUrgent, wall(240)},
                                       {Priority::kHigh, working_days(1)},
                                       {Priority::kNormal, working_days(3)},
                                       {Priority::kLow, working_days(5)}};
  return sla;
}

std::vector<EscalationLevel> DefaultEscalationLevels() {
  return {{"reminder", SlaStage::kHandle, -30 * 60000, "department"},
          {"supervision", SlaStage::kHandle, 0, "supervisor"},
          {"escalation", SlaStage::kHandle, 2 * 3600000, "district_leader"}};
}

// sla, escalation and kpi: references and ranges across keys.
void CheckSla(Ctx& ctx, Config& cfg, const std::set<std::string>& categories) {
  SlaOptions& sla = cfg.sla;
  sla.calendar.utc_offset_minutes = cfg.city.utc_offset_minutes;
  bool working = false;
  auto note = [&](const SlaLimit& l) { working |= l.basis != SlaLimit::Basis::kWall; };
  for (const auto& [stage, limits] : sla.by_priority) {
    for (const auto& [p, l] : limits) note(l);
  }
  for (const auto& [cat, l] : sla.handle_by_category) {
    CheckRef(ctx, Join("sla.handle_by_category", cat), cat, categories, "category");
    note(l);
  }
  for (size_t i = 0; i < sla.limits.size(); ++i) {
    const std::string p = Index("sla.limits", i);
    if (!sla.limits[i].category.empty()) CheckRef(ctx, Join(p, "category"), sla.limits[i].category, categories, "category");
    note(sla.limits[i].limit);
  }
  for (size_t i = 0; i < sla.wall_clock_categories.size(); ++i) {
    CheckRef(ctx, Index("sla.wall_clock_categories", i), sla.wall_clock_categories[i], categories, "category");
  }
  if (ctx.Ok("sla.warning_ratio") && ctx.Ok("sla.breach_ratio") && !(sla.warning_ratio < sla.breach_ratio)) {
    ctx.Error("sla.warning_ratio", "warning_ratio " + Num(sla.warning_ratio) + " must be below breach_ratio " +
                                       Num(sla.breach_ratio));
  }
  const bool no_hours = sla.calendar.hours.empty();
  const bool no_days = std::none_of(sla.calendar.workdays.begin(), sla.calendar.workdays.end(), [](bool b) { return b; }) &&
                       sla.calendar.extra_workdays.empty();
  if (working && (no_hours || no_days)) {
    ctx.Error(no_hours ? "sla.calendar.hours" : "sla.calendar.workdays",
              "working-time limits (wh, wm, wd) need a calendar with working hours and working days");
  }
  for (const auto& [name, w] : cfg.kpi.weights) {
    const std::string& rate = name;  // clang 14 cannot capture a structured binding
    const bool known = std::any_of(kKpiRateNames.begin(), kKpiRateNames.end(), [&](const char* n) { return rate == n; });
    if (!known) {
      std::vector<std::string> names(kKpiRateNames.begin(), kKpiRateNames.end());
      ctx.Error(Join("kpi.weights", name), "unknown KPI rate" + Suggest(name, names));
    }
  }
}

Flat Validate(Ctx& ctx, Root& root) {
  Flat f = Flatten(root);
  CityOptions& city = root.cfg.city;

  // Ids unique per section (streets and communities across the city: cells
  // and routing look them up by id). unique() checks id_of(vec[i]), read at
  // paths[i]; an empty id is not checked.
  auto unique = [&](const auto& vec, const std::vector<std::string>& paths, const std::string& key,
                    const std::string& what, auto id_of) {
    std::vector<std::pair<std::string, std::string>> items;
    for (size_t i = 0; i < vec.size(); ++i) items.emplace_back(id_of(vec[i]), paths[i]);
    CheckUnique(ctx, items, key, what);
  };
  const auto id = [](const auto& x) { return x.id; };
  unique(city.districts, f.district_paths, "id", "district id", id);
  unique(city.districts, f.district_paths, "code", "district code", [](const District& d) { return d.code; });
  unique(city.streets, f.street_paths, "id", "street id", id);
  unique(city.streets, f.street_paths, "code", "street code in the district (district/code)", [](const Street& s) {
    return s.code.empty() ? std::string() : s.district_id + "/" + s.code;
  });
  unique(city.communities, f.community_paths, "id", "community id", id);
  unique(city.communities, f.community_paths, "code", "community code in the street (district/street/code)",
         [](const Community& c) {
           return c.code.empty() ? std::string() : c.district_id + "/" + c.street_id + "/" + c.code;
         });
  // A plain list: vec[i] is at section[i].
  auto unique_list = [&](const auto& vec, const std::string& section, const std::string& what) {
    std::vector<std::string> paths;
    for (size_t i = 0; i < vec.size(); ++i) paths.push_back(Index(section, i));
    unique(vec, paths, "id", what, id);
  };
  unique_list(city.departments, "city.departments", "department id");
  unique_list(city.catalogue, "city.catalogue", "category id");
  unique_list(city.devices, "city.devices", "device id");
  unique_list(city.cameras, "city.cameras", "camera id");
  unique_list(city.units, "city.units", "unit id");

  // References.
  std::set<std::string> departments, districts, categories, kinds;
  for (const auto& d : city.departments) departments.insert(d.id);
  for (const auto& d : city.districts) districts.insert(d.id);
  for (const auto& c : city.catalogue) categories.insert(c.id);
  for (const auto& [k, v] : city.sensor_kinds) kinds.insert(k);
  for (size_t i = 0; i < city.districts.size(); ++i) {
    CheckRef(ctx, Join(f.district_paths[i], "default_department"), city.districts[i].default_department, departments,
             "department");
  }
  for (size_t i = 0; i < city.catalogue.size(); ++i) {
    CheckRef(ctx, Join(Index("city.catalogue", i), "department"), city.catalogue[i].department, departments,
             "department");
  }
  for (size_t i = 0; i < city.units.size(); ++i) {
    const std::string p = Index("city.units", i);
    CheckRef(ctx, Join(p, "department"), city.units[i].department, departments, "department");
    for (size_t j = 0; j < city.units[i].districts.size(); ++j) {
      CheckRef(ctx, Index(Join(p, "districts"), j), city.units[i].districts[j], districts, "district");
    }
  }
  for (size_t i = 0; i < city.devices.size(); ++i) {
    CheckRef(ctx, Join(Index("city.devices", i), "kind"), city.devices[i].kind, kinds, "sensor kind");
  }
  for (const auto& [k, v] : city.sensor_kinds) {
    const std::string p = Join("city.sensor_kinds", k);
    if (ctx.Ok(p) && ctx.Ok(Join(p, "min")) && ctx.Ok(Join(p, "max")) && !(v.min < v.max)) {
      ctx.Error(Join(p, "max"), "max " + Num(v.max) + " must be greater than min " + Num(v.min));
    }
  }
  CheckSla(ctx, root.cfg, categories);
  CheckApi(ctx, root.cfg.api, districts);

  // Topics: one name, one purpose.
  {
    const TopicNames& t = root.cfg.kafka.topics;
    std::map<std::string, std::string> seen;
    for (const auto& [key, member] : kTopics) {
      const std::string& name = t.*member;
      auto [it, fresh] = seen.emplace(name, key);
      if (!fresh) {
        ctx.Error(Join("kafka.topics", key), "same topic '" + name + "' as kafka.topics." + it->second);
      }
    }
  }

  // The grid: coverage, and registered positions inside it.
  CheckGrid(ctx, city, f);
  if (GridUsable(ctx, city)) {
    const GridIndex grid(city.grid);
    for (size_t i = 0; i < city.devices.size(); ++i) {
      CheckInsideGrid(ctx, grid, Index("city.devices", i), city.devices[i].position, "device");
    }
    for (size_t i = 0; i < city.cameras.size(); ++i) {
      CheckInsideGrid(ctx, grid, Index("city.cameras", i), city.cameras[i].position, "camera");
    }
  }

  CheckCameras(ctx, root.cfg, categories);

  RuleRefs refs;
  refs.kinds = kinds;
  refs.categories = categories;
  for (const auto& c : city.cameras) refs.cameras.insert(c.id);
  for (const auto& d : city.devices) {
    refs.devices.emplace(d.id, &d);
    refs.device_ids.insert(d.id);
  }
  CheckRules(ctx, root, refs);
  return f;
}

// CityModel::Build as a safety net: anything it still rejects is reported at
// the community it names, else at city.
void CheckModel(Ctx& ctx, const Config& cfg, const Flat& f) {
  auto built = CityModel::Build(cfg);
  if (built.ok()) return;
  const std::string& msg = built.status().message();
  std::string where = "city";
  for (size_t i = 0; i < cfg.city.communities.size(); ++i) {
    const std::string& id = cfg.city.communities[i].id;
    const size_t at = msg.find(id);
    const auto boundary = [&](size_t pos) { return pos >= msg.size() || !IsIdChar(msg[pos]); };
    if (!id.empty() && at != std::string::npos && boundary(at + id.size()) && (at == 0 || !IsIdChar(msg[at - 1]))) {
      where = f.community_paths[i];
      break;
    }
  }
  ctx.Error(where, where == "city" ? 0 : ctx.Line(where), msg);
}

ConfigLoadResult Load(const std::string& text, const std::string& file) {
  Ctx ctx(file);
  ConfigLoadResult result;
  YAML::Node doc;
  try {
    doc = YAML::Load(text);
  } catch (const YAML::ParserException& e) {
    ctx.Error("", e.mark.is_null() ? 0 : e.mark.line + 1, "YAML syntax error: " + e.msg);
    result.errors = ctx.TakeErrors();
    return result;
  }
  Root root;
  root.cfg.source_file = file;
  root.cfg.city.sensor_kinds = BuiltinSensorKinds();
  root.cfg.sla = DefaultSla();
  root.cfg.escalation.levels = DefaultEscalationLevels();
  if (doc.IsNull()) {
    ctx.Error("", 0, "the config is empty");
  } else if (!doc.IsMap()) {
    ctx.Error("", LineOf(doc), "the config must be a map of sections (kafka, storage, city, rules, ...), got " +
                                   Describe(doc));
  } else {
    ReadMap<Root>(ctx, doc, "", RootKeys(), root);
    const YAML::Node& const_doc = doc;
    const YAML::Node city = const_doc["city"];
    if (ctx.Ok("city") && city.IsDefined() && city.IsMap()) {
      const Flat f = Validate(ctx, root);
      if (ctx.Clean()) CheckModel(ctx, root.cfg, f);
    }
  }
  if (ctx.Clean()) result.config = std::move(root.cfg);
  result.errors = ctx.TakeErrors();
  return result;
}

ConfigLoadResult OneError(const std::string& file, std::string message) {
  ConfigLoadResult r;
  r.errors.push_back({file, 0, "", std::move(message)});
  return r;
}

}  // namespace

ConfigLoadResult LoadConfigText(const std::string& text, const std::string& file_name) {
  try {
    return Load(text, file_name);
  } catch (const std::exception& e) {  // a bug here must not take the caller down
    return OneError(file_name, std::string("internal error while loading the config: ") + e.what());
  }
}

ConfigLoadResult LoadConfigFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return OneError(path, "cannot open the config file");
  std::stringstream ss;
  ss << in.rdbuf();
  if (in.bad()) return OneError(path, "cannot read the config file");
  return LoadConfigText(ss.str(), path);
}

}  // namespace cityloop
