#include "core/json_writer.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>

#include "core/case_json.h"

namespace cityloop {
namespace {

using nlohmann::json;

// Random values written twice, once through JsonWriter and once into a
// nlohmann DOM with `j[key] = v`; the writer's text must equal dump().
class RandomJson {
 public:
  explicit RandomJson(uint32_t seed) : rng_(seed) {}

  json Value(JsonWriter& w, int depth) {
    switch (Pick(depth > 0 ? 9 : 7)) {
      case 0: w.Null(); return nullptr;
      case 1: { const bool b = Pick(2); w.Bool(b); return b; }
      case 2: { const int64_t v = Int(); w.Int(v); return v; }
      case 3: { const uint64_t v = rng_(); w.UInt(v); return v; }
      case 4: { const double v = Double(); w.Double(v); return std::isfinite(v) ? json(v) : json(nullptr); }
      case 5:
      case 6: { const std::string s = Text(); w.String(s); return s; }
      case 7: {
        json a = json::array();
        w.BeginArray();
        for (int n = Pick(5); n > 0; --n) a.push_back(Value(w, depth - 1));
        w.EndArray();
        return a;
      }
      default: {
        json o = json::object();
        w.BeginObject();
        for (int n = Pick(8); n > 0; --n) {
          const std::string key = Key();
          w.Key(key);
          o[key] = Value(w, depth - 1);
        }
        w.EndObject();
        return o;
      }
    }
  }

 private:
  int Pick(int n) { return static_cast<int>(rng_() % static_cast<uint32_t>(n)); }
  int64_t Int() {
    switch (Pick(4)) {
      case 0: return std::numeric_limits<int64_t>::min();
      case 1: return std::numeric_limits<int64_t>::max();
      case 2: return Pick(2001) - 1000;
      default: return static_cast<int64_t>((uint64_t{rng_()} << 32) | rng_());
    }
  }
  double Double() {
    static const double kSpecial[] = {0.0,  -0.0, 1.0,    -1.0,   0.1,      28.2,     112.9388,  1e300, 1e-300,
                                      5e-324, 1e16, 1e15, 123456789012345680.0, std::nan(""),
                                      std::numeric_limits<double>::infinity()};
    if (Pick(3) == 0) return kSpecial[Pick(sizeof kSpecial / sizeof kSpecial[0])];
    const uint64_t bits = (uint64_t{rng_()} << 32) | rng_();
    double d;
    std::memcpy(&d, &bits, sizeof d);
    return d;
  }
  std::string Text() {
    static const char* kPieces[] = {"a", "Z", " ", "\"", "\\", "/", "\n", "\t", "\b", "\f", "\r", "\x01", "\x1f",
                                    "\x7f", "长沙", "é", "🚒", "id", "case_id"};
    std::string s;
    for (int n = Pick(6); n > 0; --n) s += kPieces[Pick(sizeof kPieces / sizeof kPieces[0])];
    return s;
  }
  // Few distinct keys, so objects repeat keys and arrive out of order.
  std::string Key() {
    static const char* kKeys[] = {"id", "a", "b", "case", "case_id", "data", "datacontenttype", "", "z\"q", "长"};
    return kKeys[Pick(sizeof kKeys / sizeof kKeys[0])];
  }

  std::mt19937 rng_;
};

TEST(JsonWriter, WritesWhatNlohmannDumpsForRandomValues) {
  RandomJson gen(20261204);
  JsonWriter w;
  for (int i = 0; i < 20000; ++i) {
    const json expected = gen.Value(w, 4);
    ASSERT_EQ(w.text(), expected.dump()) << "value " << i;
    w.Clear();
  }
}

TEST(JsonWriter, SortsMembersAndTheLastOfAKeyWins) {
  JsonWriter w;
  w.BeginObject();
  w.Field("type", "b");
  w.Field("data", 1);
  w.Key("nested");
  w.BeginObject();
  w.Field("z", 1);
  w.Field("a", 2);
  w.EndObject();
  w.Field("type", "final");
  w.EndObject();
  EXPECT_EQ(w.Take(), R"({"data":1,"nested":{"a":2,"z":1},"type":"final"})");
  EXPECT_EQ(w.text(), "");  // Take() leaves it empty, ready for the next
}

TEST(JsonWriter, EscapesAsNlohmannDoes) {
  std::string out;
  AppendJsonString(out, "q\"b\\n\nt\tc\x01\x7f长");
  EXPECT_EQ(out, R"("q\"b\\n\nt\tc\u0001)"
                 "\x7f"
                 R"(长")");
}

TEST(JsonWriter, NumbersAsNlohmannFormatsThem) {
  for (double v : {0.0, -0.0, 1.0, 28.228, 1e21, 1e-7, 0.30000000000000004}) {
    JsonWriter w;
    w.Double(v);
    EXPECT_EQ(w.text(), json(v).dump()) << v;
  }
  JsonWriter w;
  w.Double(std::nan(""));
  EXPECT_EQ(w.text(), "null");
}

TEST(JsonWriter, CaseTextReadsBackAsTheSameCase) {
  Case c;
  c.id = "CL-20261128-000001";
  c.category = "road_waterlogging";
  c.status = CaseStatus::kDispatched;
  c.position = {28.19, 112.97};
  c.tasks.push_back(Task{});
  c.tasks[0].department = "drainage";
  c.tasks[0].acknowledge.started_ms = 5;
  c.tasks[0].acknowledge.escalations = 2;
  c.recent_commands = {"cmd-1", "cmd-2"};
  Signal s;
  s.id = "wl:dev:1";
  s.category = c.category;
  s.attributes = {{"zeta", "1"}, {"alpha", "say \"hi\""}};
  s.members = {"m1"};
  c.signals.push_back(s);
  const std::string text = CaseJsonText(c);
  auto back = ParseCaseJson(text);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(CaseJsonText(*back), text);
  EXPECT_EQ(back->tasks[0].acknowledge.escalations, 2);
  EXPECT_EQ(back->signals[0].attributes.at("alpha"), "say \"hi\"");
  EXPECT_EQ(json::parse(text).dump(), text);  // already in nlohmann's canonical form
}

}  // namespace
}  // namespace cityloop
