// Bad input: a table of malformed, mistyped, out-of-range, future-dated,
// oversized and unknown-kind messages goes through the embedded broker into a
// real Engine. Each rejected message lands in the DLQ with its reason and the
// original bytes, each accepted one is counted, the stream continues past the
// bad input (valid readings after it open a gas-leak case), and the counters
// match the table.
#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "app/engine.h"
#include "core/city.h"
#include "core/clock.h"
#include "core/time_util.h"
#include "ingest/broker.h"
#include "ingest/kafka.h"
#include "ingest/sensor_decoder.h"
#include "tests/support/pipeline_support.h"
#include "tests/support/test_support.h"

namespace cityloop {
namespace {

using nlohmann::json;
using testing::OfType;
using testing::ParseValues;
using testing::ReadTopic;
namespace reason = ingest::reason;

// The engine clock: a fixed instant, 10:00 local time.
const int64_t kNow = *ParseRfc3339Ms("2026-12-01T10:00:00+08:00");
constexpr int64_t kDay = 86400000;

struct Row {
  std::string name;
  std::string value;
  std::string expect;  // a reason code, or "" for accepted
};

// A valid reading of a registered gas device (low, normal value).
json Valid() {
  return json{{"device_id", "gas-0002"}, {"kind", "gas_ppm"}, {"ts", kNow - 5000}, {"value", 20.0}, {"unit", "ppm"}};
}

json With(json j, const std::string& key, json v) {
  j[key] = std::move(v);
  return j;
}

json Without(json j, const std::string& key) {
  j.erase(key);
  return j;
}

std::string Nested(int depth, const std::string& inner) {
  return std::string(static_cast<size_t>(depth), '[') + inner + std::string(static_cast<size_t>(depth), ']');
}

// The raw text of Valid() with `"value":LITERAL`, for literals JSON cannot hold.
std::string WithRawValue(const std::string& literal) {
  return R"({"device_id":"gas-0002","kind":"gas_ppm","ts":)" + std::to_string(kNow - 5000) +
         R"(,"value":)" + literal + R"(,"unit":"ppm"})";
}

std::vector<Row> Table() {
  const std::string ok = Valid().dump();
  std::vector<Row> rows = {
      {"not JSON", "hello, city", reason::kMalformedJson},
      {"truncated JSON", ok.substr(0, ok.size() / 2), reason::kMalformedJson},
      {"truncated after the last value", ok.substr(0, ok.size() - 1), reason::kMalformedJson},
      {"JSON array", "[" + ok + "]", reason::kMalformedJson},
      {"JSON string", R"("gas-0002")", reason::kMalformedJson},
      {"empty message", "", reason::kMalformedJson},
      {"binary garbage", std::string("\x00\xff\xfe\x80\x01{\x9c\x00\x7f", 9), reason::kMalformedJson},
      {"trailing content", ok + " {}", reason::kMalformedJson},
      {"device_id number", With(Valid(), "device_id", 12345).dump(), reason::kWrongType},
      {"missing device_id", Without(Valid(), "device_id").dump(), reason::kMissingField},
      {"device_id null", With(Valid(), "device_id", nullptr).dump(), reason::kMissingField},
      {"device_id empty", With(Valid(), "device_id", "").dump(), reason::kMissingField},
      {"device_id 200 characters", With(Valid(), "device_id", std::string(200, 'd')).dump(), reason::kOutOfRange},
      {"kind number", With(Valid(), "kind", 7).dump(), reason::kWrongType},
      {"missing ts", Without(Valid(), "ts").dump(), reason::kMissingField},
      {"ts bool", With(Valid(), "ts", true).dump(), reason::kWrongType},
      {"ts fractional ms", With(Valid(), "ts", static_cast<double>(kNow - 5000) + 0.5).dump(), reason::kWrongType},
      {"ts bad string", With(Valid(), "ts", "yesterday").dump(), reason::kBadTimestamp},
      {"ts impossible date (30 February)", With(Valid(), "ts", "2026-02-30T10:00:00+08:00").dump(),
       reason::kBadTimestamp},
      {"ts impossible date (31 November)", With(Valid(), "ts", "2026-11-31T09:59:00+08:00").dump(),
       reason::kBadTimestamp},
      {"ts offset +99:00", With(Valid(), "ts", "2026-12-05T03:00:00+99:00").dump(), reason::kBadTimestamp},
      {"ts beyond int64", R"({"device_id":"gas-0002","kind":"gas_ppm","ts":100000000000000000000,"value":20.0})",
       reason::kBadTimestamp},
      {"ts integral float (accepted)",
       With(With(Valid(), "device_id", "gas-0004"), "ts", static_cast<double>(kNow - 5000)).dump(), ""},
      {"ts RFC 3339 valid", With(With(Valid(), "device_id", "gas-0003"), "ts", FormatRfc3339Ms(kNow - 5000)).dump(),
       ""},
      {"ts far future (now + 1 day)", With(Valid(), "ts", kNow + kDay).dump(), reason::kFutureTimestamp},
      {"ts stale (now - 60 days)", With(Valid(), "ts", kNow - 60 * kDay).dump(), reason::kStaleTimestamp},
      {"value string", With(Valid(), "value", "20").dump(), reason::kWrongType},
      {"value missing", Without(Valid(), "value").dump(), reason::kMissingField},
      {"value repeated, last one a string", ok.substr(0, ok.size() - 1) + R"(,"value":"x"})", reason::kWrongType},
      {"value nested array", With(Valid(), "value", json::parse(Nested(50, "1"))).dump(), reason::kWrongType},
      {"value NaN literal", WithRawValue("NaN"), reason::kMalformedJson},
      {"value Infinity literal", WithRawValue("Infinity"), reason::kMalformedJson},
      {"value -Infinity literal", WithRawValue("-Infinity"), reason::kMalformedJson},
      {"value 1e999", WithRawValue("1e999"), reason::kWrongType},
      {"water_level 50 m (range 0..10)",
       json{{"device_id", "wl-0001"}, {"kind", "water_level"}, {"ts", kNow - 5000}, {"value", 50.0}}.dump(),
       reason::kOutOfRange},
      {"gas_ppm negative", With(Valid(), "value", -5.0).dump(), reason::kOutOfRange},
      {"unit number", With(Valid(), "unit", 3).dump(), reason::kWrongType},
      {"lat 95", With(With(Valid(), "lat", 95.0), "lon", 112.97).dump(), reason::kOutOfRange},
      {"lon 200", With(With(Valid(), "lat", 28.18), "lon", 200.0).dump(), reason::kOutOfRange},
      {"lat without lon", With(Valid(), "lat", 28.18).dump(), reason::kMissingField},
      {"lat as string", With(With(Valid(), "lat", "28.18"), "lon", 112.97).dump(), reason::kWrongType},
      {"position outside the city grid", With(With(Valid(), "lat", 28.30), "lon", 112.97).dump(),
       reason::kOutsideCity},
      {"unregistered device without position", With(Valid(), "device_id", "ghost-0099").dump(),
       reason::kUnknownLocation},
      {"oversized (70 KB of padding)", With(Valid(), "pad", std::string(70 * 1024, 'x')).dump(), reason::kOversized},
      {"unknown kind",
       json{{"device_id", "vib-0001"}, {"kind", "vibration_hz"}, {"ts", kNow - 5000}, {"value", 3.25},
            {"lat", 28.18}, {"lon", 112.97}}
           .dump(),
       ""},
      {"unknown extra fields",
       With(With(With(Valid(), "firmware", "2.1.0"), "battery", json{{"pct", 87}, {"cells", {3.7, 3.6}}}), "tags",
            json::array({"a", "b"}))
           .dump(),
       ""},
      {"deeply nested JSON (5000 levels, over the 64 allowed) in an unknown field",
       ok.substr(0, ok.size() - 1) + R"(,"diag":)" + Nested(5000, R"({"a":[1,{"b":null}]})") + "}", reason::kMalformedJson},
      {"malformed JSON deep inside an unknown field",
       ok.substr(0, ok.size() - 1) + R"(,"diag":)" + Nested(100, "1,") + "}", reason::kMalformedJson},
      // After accepted readings at now - 5 s on this partition: beyond the 30 s allowed lateness.
      {"late: 10 minutes behind its partition", With(Valid(), "ts", kNow - 10 * 60000).dump(), "late_event"},
  };
  return rows;
}

std::string Key(size_t i) { return "row-" + std::to_string(i); }

TEST(BadInput, EachBadMessageIsDeadLetteredWithItsReasonAndTheStreamContinues) {
  testing::TempDir dir;
  ConfigLoadResult loaded = LoadConfigFile(testing::ExampleConfigPath());
  ASSERT_TRUE(loaded.config) << (loaded.errors.empty() ? "" : loaded.errors[0].ToString());
  auto city = CityModel::Build(*loaded.config);
  ASSERT_TRUE(city.ok()) << city.status().ToString();
  const TopicNames& topics = loaded.config->kafka.topics;
  ASSERT_EQ(loaded.config->ingest.max_message_bytes, 64 * 1024) << "the table's oversized row assumes 64 KB";

  auto broker = ingest::EmbeddedBroker::Start(ingest::BrokerOptionsFor(loaded.config->kafka));
  ASSERT_TRUE(broker.ok()) << broker.status().ToString();
  const std::string bootstrap = (*broker)->bootstrap();

  // The bad table, then a real incident: gas-0001 (registered, no lat/lon in
  // the message) at 900 ppm every 10 s for 2 minutes of event time; the
  // gas-leak rule raises above 500 ppm held for 1 minute.
  const std::vector<Row> rows = Table();
  ASSERT_GE(rows.size(), 20u);
  std::vector<std::string> incident;
  const int64_t incident_start = kNow - 3 * 60000;
  for (int64_t t = incident_start; t <= incident_start + 2 * 60000; t += 10000) {
    incident.push_back(
        json{{"device_id", "gas-0001"}, {"kind", "gas_ppm"}, {"ts", t}, {"value", 900.0}, {"unit", "ppm"}}.dump());
  }

  ingest::ProducerOptions po;
  po.bootstrap = bootstrap;
  po.client_id = "bad-input-test";
  std::atomic<int> delivery_errors{0};
  auto producer = ingest::KafkaProducer::Create(po, [&](uint64_t, const Status& st) {
    if (!st.ok()) ++delivery_errors;
  });
  ASSERT_TRUE(producer.ok()) << producer.status().ToString();
  for (size_t i = 0; i < rows.size(); ++i) {
    ASSERT_TRUE((*producer)->Produce(topics.sensors, Key(i), rows[i].value, {}, i, 0).ok()) << rows[i].name;
  }
  // On a partition of its own: its readings are minutes older than the
  // table's, which on one partition would be late input (event_time).
  for (const auto& v : incident) ASSERT_TRUE((*producer)->Produce(topics.sensors, "gas-0001", v, {}, 0, 1).ok());
  ASSERT_TRUE((*producer)->Flush(30000).ok());
  ASSERT_EQ(delivery_errors.load(), 0);

  // Where each row landed, read back from the broker.
  std::map<std::string, ingest::Message> produced;
  for (auto& m : ReadTopic(bootstrap, topics.sensors)) {
    EXPECT_EQ(m.partition, m.key == "gas-0001" ? 1 : 0);
    produced.emplace(m.key, std::move(m));
  }
  ASSERT_EQ(produced.size(), rows.size() + 1) << "one entry per row key plus the gas-0001 key";

  ManualClock clock(kNow);
  MetricsRegistry metrics;
  app::EngineOptions eo;
  eo.bootstrap = bootstrap;
  eo.store_path = dir.file("store");
  eo.exit_when_caught_up = true;
  std::atomic<bool> stop{false};
  {
    auto engine = app::Engine::Create(*city, eo, clock, &metrics);
    ASSERT_TRUE(engine.ok()) << engine.status().ToString();
    ASSERT_TRUE((*engine)->Run(stop).ok());
  }

  // Expected counts from the table.
  std::map<std::string, int64_t> rejected_by_reason;
  int64_t accepted_rows = 0;
  for (const Row& r : rows) {
    if (r.expect.empty()) {
      ++accepted_rows;
    } else {
      ++rejected_by_reason[r.expect];
    }
  }
  const int64_t rejected_rows = static_cast<int64_t>(rows.size()) - accepted_rows;

  // The DLQ holds exactly the rejected rows, each once, with its reason, its
  // source coordinates and its original bytes.
  std::map<std::string, const ingest::Message*> dlq_by_key;
  const auto dlq = ReadTopic(bootstrap, topics.dlq);
  for (const auto& m : dlq) {
    EXPECT_TRUE(dlq_by_key.emplace(m.key, &m).second) << "dead-lettered twice: " << m.key;
  }
  for (size_t i = 0; i < rows.size(); ++i) {
    const Row& row = rows[i];
    SCOPED_TRACE("row " + std::to_string(i) + " (" + row.name + ")");
    auto it = dlq_by_key.find(Key(i));
    if (row.expect.empty()) {
      EXPECT_TRUE(it == dlq_by_key.end()) << "accepted row was dead-lettered: "
                                          << (it->second->header("x-error") ? *it->second->header("x-error") : "");
      continue;
    }
    if (it == dlq_by_key.end()) {
      ADD_FAILURE() << "not in the DLQ; expected " << row.expect;
      continue;
    }
    const ingest::Message& d = *it->second;
    const ingest::Message& src = produced.at(Key(i));
    const std::string* topic = d.header("x-source-topic");
    const std::string* partition = d.header("x-source-partition");
    const std::string* offset = d.header("x-source-offset");
    const std::string* error = d.header("x-error");
    if (!topic || !partition || !offset || !error) {
      ADD_FAILURE() << "missing DLQ headers";
      continue;
    }
    EXPECT_EQ(*topic, topics.sensors);
    EXPECT_EQ(*partition, "0");
    EXPECT_EQ(*offset, std::to_string(src.offset));
    EXPECT_EQ(error->rfind(row.expect + ": ", 0), 0u) << "x-error: " << *error;
    EXPECT_TRUE(d.value == row.value) << "DLQ value differs from the original bytes (" << d.value.size() << " vs "
                                      << row.value.size() << " bytes)";
  }
  EXPECT_EQ(static_cast<int64_t>(dlq.size()), rejected_rows);

  // Counters.
  const int64_t total = static_cast<int64_t>(rows.size() + incident.size());
  EXPECT_EQ(metrics.CounterTotal("cityloop_ingest_messages_total"), total);
  for (const char* code : {reason::kOversized, reason::kMalformedJson, reason::kMissingField, reason::kWrongType,
                           reason::kOutOfRange, reason::kOutsideCity, reason::kFutureTimestamp,
                           reason::kStaleTimestamp, reason::kBadTimestamp, reason::kUnknownLocation,
                           "late_event"}) {
    EXPECT_EQ(metrics.CounterTotal("cityloop_ingest_rejected_total", {{"reason", code}}), rejected_by_reason[code])
        << "reason " << code;
  }
  EXPECT_EQ(metrics.CounterTotal("cityloop_ingest_rejected_total", {{"topic", topics.sensors}}), rejected_rows);
  EXPECT_EQ(metrics.CounterTotal("cityloop_ingest_rejected_total"), rejected_rows);
  EXPECT_EQ(metrics.CounterTotal("cityloop_late_events_total"), 1);
  EXPECT_EQ(metrics.CounterTotal("cityloop_ingest_accepted_total"),
            accepted_rows + static_cast<int64_t>(incident.size()));
  EXPECT_EQ(metrics.CounterTotal("cityloop_readings_unknown_kind_total"), 1);

  // The stream continued past the bad input: the incident opened one gas-leak case.
  auto opened = OfType(ParseValues(ReadTopic(bootstrap, topics.cases)), "city.case.opened");
  ASSERT_EQ(opened.size(), 1u) << "expected one case (gas leak at gas-0001)";
  EXPECT_EQ(opened[0]["data"]["category"], "gas_leak") << opened[0].dump();
  EXPECT_EQ(opened[0]["data"]["signal"]["device_id"], "gas-0001") << opened[0].dump();
  EXPECT_EQ(opened[0]["data"]["department"], "gas") << opened[0].dump();
}

// Nesting as deep as the size limit allows (about 30000 levels in 64 KB):
// the decoder must answer, not overflow its stack. Run in a child process so
// that a crash fails this test only.
TEST(BadInputDeathTest, NestingAsDeepAsTheSizeLimitAllowsDoesNotCrashTheDecoder) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  ConfigLoadResult loaded = LoadConfigFile(testing::ExampleConfigPath());
  ASSERT_TRUE(loaded.config);
  auto city = CityModel::Build(*loaded.config);
  ASSERT_TRUE(city.ok()) << city.status().ToString();
  const std::string ok = Valid().dump();
  const int depth = static_cast<int>((loaded.config->ingest.max_message_bytes - static_cast<int64_t>(ok.size()) - 20) / 2);
  const std::string deep_unknown = ok.substr(0, ok.size() - 1) + R"(,"diag":)" + Nested(depth, "1") + "}";
  const std::string deep_value = ok.substr(0, ok.size() - 1) + R"(,"lat":)" + Nested(depth, "1") + R"(,"lon":1})";
  ASSERT_LE(static_cast<int64_t>(deep_unknown.size()), loaded.config->ingest.max_message_bytes);
  ASSERT_LE(static_cast<int64_t>(deep_value.size()), loaded.config->ingest.max_message_bytes);
  for (const std::string* msg : {&deep_unknown, &deep_value}) {
    EXPECT_EXIT(
        {
          ingest::SensorDecoder decoder(*city);
          auto outcome = decoder.Decode(*msg, kNow);
          // Nesting past the decoder's limit is malformed, wherever it is.
          const auto* why = std::get_if<ingest::Rejection>(&outcome);
          std::exit(!why ? 3 : 0);
        },
        ::testing::ExitedWithCode(0), "")
        << (msg == &deep_unknown ? "deep array in an unknown field" : "deep array as lat");
  }
}

}  // namespace
}  // namespace cityloop
