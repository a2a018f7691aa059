// Detection scenarios end to end on the embedded broker: readings, reports and
// camera detections are produced over the Kafka protocol, the engine (the
// example config's rules) consumes them, and the published case events are
// read back. Each scenario is one real-world problem and must end as one open
// case: correlations merge the cases of their members, reports join the case
// sensors found.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdio>
#include <map>
#include <optional>
#include <set>

#include "app/engine.h"
#include "core/city.h"
#include "core/time_util.h"
#include "ingest/broker.h"
#include "ingest/kafka.h"
#include "tests/support/pipeline_support.h"
#include "tests/support/test_support.h"

namespace cityloop {
namespace {

using nlohmann::json;
using testing::OfType;
using testing::ParseValues;
using testing::ReadTopic;

constexpr int64_t kSec = 1000;
constexpr int64_t kMin = 60000;

std::string Reading(const Device& d, int64_t ts, double value) {
  char buf[256];
  std::snprintf(buf, sizeof buf, R"({"device_id":"%s","kind":"%s","ts":%lld,"value":%.3f})", d.id.c_str(),
                d.kind.c_str(), static_cast<long long>(ts), value);
  return buf;
}

class DetectionScenario : public ::testing::Test {
 protected:
  void SetUp() override {
    ConfigLoadResult loaded = LoadConfigFile(testing::ExampleConfigPath());
    ASSERT_TRUE(loaded.config) << (loaded.errors.empty() ? "" : loaded.errors[0].ToString());
    auto city = CityModel::Build(*loaded.config);
    ASSERT_TRUE(city.ok()) << city.status().ToString();
    city_ = *city;
    auto broker = ingest::EmbeddedBroker::Start(ingest::BrokerOptionsFor(loaded.config->kafka));
    ASSERT_TRUE(broker.ok()) << broker.status().ToString();
    broker_ = std::move(broker).value();
    ingest::ProducerOptions po;
    po.bootstrap = broker_->bootstrap();
    po.client_id = "scenario";
    auto producer = ingest::KafkaProducer::Create(po);
    ASSERT_TRUE(producer.ok()) << producer.status().ToString();
    producer_ = std::move(producer).value();
  }

  const TopicNames& topics() const { return city_->config().kafka.topics; }

  // Devices of kinds a and b no farther apart than max_m, in the same or neighbouring cells.
  std::pair<const Device*, const Device*> Pair(const std::string& a, const std::string& b, double max_m) const {
    for (const Device& x : city_->config().city.devices) {
      if (x.kind != a) continue;
      for (const Device& y : city_->config().city.devices) {
        if (y.kind != b || DistanceMeters(x.position, y.position) > max_m) continue;
        const int cx = city_->CellAt(x.position)->index, cy = city_->CellAt(y.position)->index;
        const auto& g = city_->grid();
        if (std::abs(g.Row(cx) - g.Row(cy)) <= 1 && std::abs(g.Col(cx) - g.Col(cy)) <= 1) return {&x, &y};
      }
    }
    return {nullptr, nullptr};
  }

  void Send(const std::string& topic, const std::string& key, const std::string& value) {
    ASSERT_TRUE(producer_->Produce(topic, key, value).ok());
  }
  // Readings of d every `every` from `from` to `to` (inclusive) at value.
  void Readings(const Device& d, int64_t from, int64_t to, int64_t every, double value) {
    for (int64_t t = from; t <= to; t += every) Send(topics().sensors, d.id, Reading(d, t, value));
  }

  // Runs the engine over everything produced; returns the case events.
  std::vector<json> RunEngine(int64_t now_ms) {
    EXPECT_TRUE(producer_->Flush(10000).ok());
    ManualClock clock(now_ms);
    app::EngineOptions eo;
    eo.bootstrap = broker_->bootstrap();
    eo.store_path = dir_.file("store");
    eo.exit_when_caught_up = true;
    auto engine = app::Engine::Create(city_, eo, clock, &metrics_);
    EXPECT_TRUE(engine.ok()) << engine.status().ToString();
    if (!engine.ok()) return {};
    std::atomic<bool> stop{false};
    EXPECT_TRUE((*engine)->Run(stop).ok());
    return ParseValues(ReadTopic(broker_->bootstrap(), topics().cases));
  }

  // The last known state of every case (from its newest event's data), by id.
  static std::map<std::string, json> Cases(const std::vector<json>& events) {
    std::map<std::string, json> out;
    for (const json& e : events) out[e["subject"].get<std::string>()] = e;
    return out;
  }

  testing::TempDir dir_;
  std::shared_ptr<const CityModel> city_;
  std::unique_ptr<ingest::EmbeddedBroker> broker_;
  std::unique_ptr<ingest::KafkaProducer> producer_;
  MetricsRegistry metrics_;
};

TEST_F(DetectionScenario, GasNextToATiltedManholeIsOneUrgentGasLeakCase) {
  auto [gas, lid] = Pair("gas_ppm", "manhole_tilt", 1200);
  ASSERT_NE(gas, nullptr) << "the example city needs a gas sensor next to a manhole sensor";
  const int64_t t0 = *ParseRfc3339Ms("2026-11-28T10:00:00+08:00");
  Readings(*gas, t0, t0 + 3 * kMin, 30 * kSec, 800);       // gas-leak: above 500 for 1m
  Readings(*lid, t0 + 30 * kSec, t0 + 3 * kMin, 30 * kSec, 25);  // manhole-displaced: above 15 for 1m
  const auto events = RunEngine(t0 + 5 * kMin);

  const auto opened = OfType(events, "city.case.opened");
  ASSERT_EQ(opened.size(), 2u) << "a gas-leak and a manhole case open first";
  const auto merged = OfType(events, "city.case.merged");
  ASSERT_EQ(merged.size(), 2u);  // one on each side
  std::string gas_case, lid_case;
  for (const auto& e : opened) {
    (e["data"]["category"] == "gas_leak" ? gas_case : lid_case) = e["subject"].get<std::string>();
  }
  ASSERT_FALSE(gas_case.empty());
  ASSERT_FALSE(lid_case.empty());
  const auto cases = Cases(events);
  EXPECT_EQ(cases.at(lid_case)["data"]["status"], "merged");
  EXPECT_EQ(cases.at(lid_case)["data"]["merged_into"], gas_case);
  EXPECT_EQ(cases.at(gas_case)["data"]["status"], "dispatched");
  EXPECT_EQ(cases.at(gas_case)["data"]["priority"], "urgent");
  EXPECT_EQ(cases.at(gas_case)["data"]["absorbed"], lid_case);
  // The combined signal explains itself: the correlation rule and both members.
  bool correlated = false;
  for (const auto& e : OfType(events, "city.case.signal_added")) {
    const auto& s = e["data"]["signal"];
    if (s["source"] != "correlation") continue;
    correlated = true;
    EXPECT_EQ(e["subject"], gas_case);
    EXPECT_EQ(s["rule"], "gas-leak-confirmed");
    EXPECT_EQ(s["members"].size(), 2u);
    EXPECT_FALSE(s["explanation"].get<std::string>().empty());
  }
  EXPECT_TRUE(correlated);
}

TEST_F(DetectionScenario, AHotlineReportJoinsTheFloodedRoadSensorsFound) {
  const Device* wl = nullptr;
  for (const Device& d : city_->config().city.devices) {
    if (d.kind == "water_level" && !wl) wl = &d;
  }
  ASSERT_NE(wl, nullptr);
  const int64_t t0 = *ParseRfc3339Ms("2026-11-28T10:00:00+08:00");
  Readings(*wl, t0, t0 + 4 * kMin, 30 * kSec, 0.45);  // road-waterlogging (0.30 for 2m; 0.40 for wl-0003)
  char report[512];
  std::snprintf(report, sizeof report,
                R"({"report_id":"r-88121","channel":"hotline12345","ts":%lld,"category":"waterlogging",)"
                R"("text":"路面积水没过脚踝","lat":%.6f,"lon":%.6f})",
                static_cast<long long>(t0 + 5 * kMin), wl->position.lat + 0.0002, wl->position.lon);
  Send(topics().reports, "r-88121", report);
  const auto events = RunEngine(t0 + 6 * kMin);

  // One case holding both. Which opened it depends on which topic the
  // consumer fetched first; the other joins it.
  const auto opened = OfType(events, "city.case.opened");
  ASSERT_EQ(opened.size(), 1u);
  const std::string id = opened[0]["subject"];
  std::set<std::string> sources;
  for (const auto& e : events) {
    if (!e["data"].contains("signal")) continue;
    const auto& s = e["data"]["signal"];
    EXPECT_EQ(e["subject"], id);
    sources.insert(s["source"].get<std::string>());
    if (s["source"] != "report") continue;
    EXPECT_EQ(s["attributes"]["channel"], "hotline12345");
    EXPECT_EQ(s["attributes"]["report_id"], "r-88121");
  }
  EXPECT_EQ(sources, (std::set<std::string>{"report", "sensor"})) << "the report and the sensor in one case";
}

TEST_F(DetectionScenario, SmokeAndACameraFireCandidateAreOneConfirmedFire) {
  const Device* smoke = nullptr;
  const Camera* camera = nullptr;
  for (const Camera& c : city_->config().city.cameras) {
    for (const Device& d : city_->config().city.devices) {
      if (!camera && d.kind == "smoke" && DistanceMeters(d.position, c.position) <= 400) smoke = &d, camera = &c;
    }
  }
  ASSERT_NE(camera, nullptr) << "the example city needs a camera within 400 m of a smoke detector";
  const int64_t t0 = *ParseRfc3339Ms("2026-11-28T10:00:00+08:00");
  // The camera sees flames first: a fire candidate after 3 frames over 10 s.
  for (int64_t t = t0; t <= t0 + 20 * kSec; t += 4 * kSec) {
    char buf[256];
    std::snprintf(buf, sizeof buf,
                  R"({"camera_id":"%s","ts":%lld,"detections":[{"label":"fire","score":0.82,)"
                  R"("bbox":[0.41,0.52,0.10,0.08],"track_id":"t17"}]})",
                  camera->id.c_str(), static_cast<long long>(t));
    Send(topics().camera_detections, camera->id, buf);
  }
  Readings(*smoke, t0 + 30 * kSec, t0 + 2 * kMin, 15 * kSec, 15);  // smoke-fire: above 10 for 30s
  const auto events = RunEngine(t0 + 3 * kMin);

  const auto opened = OfType(events, "city.case.opened");
  ASSERT_EQ(opened.size(), 2u) << "a fire candidate, then the smoke detector's fire";
  std::string fire, candidate;
  for (const auto& e : opened) {
    (e["data"]["category"] == "fire" ? fire : candidate) = e["subject"].get<std::string>();
  }
  const auto cases = Cases(events);
  ASSERT_TRUE(cases.count(candidate));
  EXPECT_EQ(cases.at(candidate)["data"]["status"], "merged");
  EXPECT_EQ(cases.at(candidate)["data"]["merged_into"], fire);
  EXPECT_EQ(cases.at(fire)["data"]["priority"], "urgent");
}

TEST_F(DetectionScenario, LateInputGoesToTheDeadLetterTopicWithItsReason) {
  const Device* wl = nullptr;
  for (const Device& d : city_->config().city.devices) {
    if (d.kind == "water_level" && !wl) wl = &d;
  }
  const int64_t t0 = *ParseRfc3339Ms("2026-11-28T10:00:00+08:00");
  Readings(*wl, t0, t0 + 2 * kMin, 30 * kSec, 0.05);
  // Same key, so the same partition: 2 minutes behind it, beyond the 30 s allowed.
  Send(topics().sensors, wl->id, Reading(*wl, t0, 0.9));
  RunEngine(t0 + 3 * kMin);
  const auto dlq = ReadTopic(broker_->bootstrap(), topics().dlq);
  ASSERT_EQ(dlq.size(), 1u);
  std::map<std::string, std::string> headers(dlq[0].headers.begin(), dlq[0].headers.end());
  EXPECT_EQ(headers["x-error-code"], "late_event");
  EXPECT_NE(headers["x-error"].find("watermark"), std::string::npos) << headers["x-error"];
  EXPECT_EQ(metrics_.CounterTotal("cityloop_late_events_total"), 1);
}

}  // namespace
}  // namespace cityloop
