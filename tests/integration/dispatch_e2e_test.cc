// The case workflow end to end on the embedded broker, with the engine
// running live (on a manual clock, so city time is the test's):
// - readings over a threshold open a case whose order goes out on
//   cityloop.dispatch; the simulated fleet (ingest/unit_fleet.h, with its
//   operators) takes the order read back from Kafka, its unit drives there
//   (city.units) and its commands (cityloop.commands) carry the case
//   through acknowledged, enroute, arrived, handled, verified and closed,
//   and the engine's unit state ends where the fleet's unit is;
// - a fixed script of commands, some of which must be rejected, still
//   closes its case;
// - `cityloop simulate --operate` as RunSimulation runs it: every order its
//   fleet took ends in a closed case.
// Production is as fast as Kafka takes it; every wait is on a condition.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstdio>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "app/engine.h"
#include "app/simulation.h"
#include "core/city.h"
#include "core/time_util.h"
#include "ingest/broker.h"
#include "ingest/kafka.h"
#include "ingest/unit_fleet.h"
#include "tests/support/pipeline_support.h"
#include "tests/support/test_city.h"
#include "tests/support/test_support.h"

namespace cityloop {
namespace {

using nlohmann::json;
using testing::OfType;
using testing::ParseValues;
using testing::ReadTopic;

constexpr int64_t kSec = 1000;
constexpr int64_t kMin = 60 * kSec;
const int64_t kT0 = *ParseRfc3339Ms("2026-11-28T10:00:00+08:00");

// The test city (tests/support/test_city.h) with typed units and speeds.
// Sensor-backed verification is off: the inspector closes the cases.
Config DispatchConfig() {
  Config c = testing::TestConfig();
  for (Unit& u : c.city.units) {
    if (u.id == "drain-1") u.type = "truck";
    if (u.id == "gas-u1") u.type = "car";
  }
  c.dispatch.speed_kmh = {{"truck", 25}, {"car", 36}};
  c.dispatch.sensor_normal_for_ms = 0;
  c.dispatch.relapse_within_ms = 0;  // no relapses (nothing is sensor-verified): settled cases stay in memory 1 h
  return c;
}

// Everything that arrives on one topic, read without a group from the start.
class TopicTail {
 public:
  TopicTail(const std::string& bootstrap, const std::string& topic) {
    ingest::ConsumerOptions co;
    co.bootstrap = bootstrap;
    co.topics = {topic};
    co.assign_all_partitions = true;
    auto c = ingest::KafkaConsumer::Create(co, [](const std::string&, int32_t) { return std::optional<int64_t>(0); });
    EXPECT_TRUE(c.ok()) << c.status().ToString();
    if (c.ok()) consumer_ = std::move(c).value();
  }
  ~TopicTail() {
    if (consumer_) consumer_->Close();
  }
  // What arrived since the last call (waiting up to timeout_ms for the first).
  std::vector<ingest::Message> Poll(int timeout_ms = 20) {
    std::vector<ingest::Message> got;
    if (consumer_) {
      EXPECT_TRUE(consumer_->Poll(1000, timeout_ms, &got).ok());
    }
    for (const auto& m : got) values_.push_back(json::parse(m.value));
    return got;
  }
  const std::vector<json>& values() const { return values_; }

 private:
  std::unique_ptr<ingest::KafkaConsumer> consumer_;
  std::vector<json> values_;
};

// A case's events on cityloop.cases in their per-case order (seq in the id).
std::vector<json> EventsOf(const std::vector<json>& events, const std::string& case_id) {
  std::vector<std::pair<int, json>> mine;
  for (const json& e : events) {
    if (e.value("subject", "") != case_id || e.value("type", "") == "city.command.rejected") continue;
    const std::string id = e["id"];
    mine.emplace_back(std::atoi(id.substr(id.rfind(':') + 1).c_str()), e);
  }
  std::sort(mine.begin(), mine.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<json> out;
  for (auto& [seq, e] : mine) out.push_back(std::move(e));
  return out;
}

bool HasEvent(const std::vector<json>& events, const std::string& case_id, const std::string& type) {
  for (const json& e : events) {
    if (e.value("subject", "") == case_id && e.value("type", "") == type) return true;
  }
  return false;
}

std::string Reading(const Device& d, int64_t ts, double value) {
  char buf[256];
  std::snprintf(buf, sizeof buf, R"({"device_id":"%s","kind":"%s","ts":%lld,"value":%.3f})", d.id.c_str(),
                d.kind.c_str(), static_cast<long long>(ts), value);
  return buf;
}

class DispatchEndToEnd : public ::testing::Test {
 protected:
  void SetUp() override {
    city_ = testing::TestCity(DispatchConfig());
    auto broker = ingest::EmbeddedBroker::Start(ingest::BrokerOptionsFor(config().kafka));
    ASSERT_TRUE(broker.ok()) << broker.status().ToString();
    broker_ = std::move(broker).value();
    ingest::ProducerOptions po;
    po.bootstrap = bootstrap();
    po.client_id = "dispatch-e2e";
    auto producer = ingest::KafkaProducer::Create(po);
    ASSERT_TRUE(producer.ok()) << producer.status().ToString();
    producer_ = std::move(producer).value();

    app::EngineOptions eo;
    eo.bootstrap = bootstrap();
    eo.store_path = dir_.file("store");
    auto engine = app::Engine::Create(city_, eo, clock_, &metrics_);
    ASSERT_TRUE(engine.ok()) << engine.status().ToString();
    engine_ = std::move(engine).value();
    engine_thread_ = std::thread([this] { engine_status_ = engine_->Run(stop_); });
  }
  void TearDown() override {
    stop_.store(true);
    if (engine_thread_.joinable()) engine_thread_.join();
    EXPECT_TRUE(engine_status_.ok()) << engine_status_.ToString();
  }

  const Config& config() const { return city_->config(); }
  const TopicNames& topics() const { return config().kafka.topics; }
  const std::string& bootstrap() const { return broker_->bootstrap(); }
  const Device& device(const std::string& id) const { return *city_->FindDevice(id); }

  void Send(const std::string& topic, const std::string& key, const std::string& value) {
    ASSERT_TRUE(producer_->Produce(topic, key, value).ok());
  }
  void Send(const std::vector<ingest::SimulatedReading>& records) {
    for (const auto& r : records) Send(r.topic, r.key, r.value);
    ASSERT_TRUE(producer_->Flush(10000).ok());
  }
  // Readings of d every 30 s over [from, to] at value.
  void Readings(const Device& d, int64_t from, int64_t to, double value) {
    for (int64_t t = from; t <= to; t += 30 * kSec) Send(topics().sensors, d.id, Reading(d, t, value));
    ASSERT_TRUE(producer_->Flush(10000).ok());
  }

  // The first order on cityloop.dispatch (read by tail); its case id.
  std::string AwaitOrder(TopicTail& tail) {
    std::string case_id;
    EXPECT_TRUE(testing::WaitFor([&] {
      for (const auto& m : tail.Poll()) {
        auto e = ingest::ParseDispatchEvent(m.value);
        if (e && e->kind == ingest::DispatchEvent::Kind::kOrder && case_id.empty()) case_id = e->order.case_id;
      }
      return !case_id.empty();
    }, std::chrono::seconds(20))) << "no dispatch order";
    return case_id;
  }

  // Waits until the engine has applied every record of produced (its
  // stored input offsets reach their count on each topic).
  void AwaitApplied(const std::vector<ingest::SimulatedReading>& produced) {
    std::map<std::string, int64_t> want;
    for (const auto& r : produced) ++want[r.topic];
    EXPECT_TRUE(testing::WaitFor([&] {
      for (const auto& [topic, n] : want) {
        int64_t applied = 0;
        for (int32_t p = 0; p < config().kafka.partitions; ++p) {
          applied += engine_->store().GetOffset({topic, p}).value_or(0);
        }
        if (applied < n) return false;
      }
      return true;
    }, std::chrono::seconds(20))) << "the engine did not apply " << produced.size() << " records";
  }

  json StoredJson(Result<std::optional<std::string>> r) const {
    if (!r.ok() || !r->has_value()) return json();
    return json::parse(**r);
  }

  testing::TempDir dir_;
  std::shared_ptr<const CityModel> city_;
  std::unique_ptr<ingest::EmbeddedBroker> broker_;
  std::unique_ptr<ingest::KafkaProducer> producer_;
  // Far enough after the scenarios that no input is from the future, and
  // fixed: the engine's event time moves with its input only.
  ManualClock clock_{kT0 + 3 * 3600000};
  MetricsRegistry metrics_;
  std::unique_ptr<app::Engine> engine_;
  std::thread engine_thread_;
  std::atomic<bool> stop_{false};
  Status engine_status_;
};

TEST_F(DispatchEndToEnd, TheFleetDrivesACaseFromOrderToClosure) {
  // Road water at wl-1 above 0.30 m for 2 min: a waterlogging case for
  // drainage, whose nearest unit covering the west is drain-1.
  const Device& wl = device("wl-1");
  Readings(wl, kT0, kT0 + 4 * kMin, 0.5);

  ingest::UnitFleetOptions fo;
  fo.seed = 3;
  fo.start_ms = kT0;
  fo.operate = true;
  ingest::UnitFleet fleet(city_, fo);
  std::vector<ingest::SimulatedReading> produced, batch;
  fleet.Advance(kT0 + 4 * kMin, &batch);  // the units so far
  Send(batch);
  produced = batch;

  TopicTail dispatch(bootstrap(), topics().dispatch), cases(bootstrap(), topics().cases);
  const std::string case_id = AwaitOrder(dispatch);
  ASSERT_FALSE(case_id.empty());
  ASSERT_EQ(dispatch.values().size(), 1u);
  ASSERT_EQ(fleet.OnDispatchEvent(dispatch.values()[0].dump(), fleet.time_ms()), "");
  // The job a minute of city time at a time, each once the engine has
  // applied the one before: the engine's timers run on the newest event
  // time of any input, so a topic far ahead would fire them early (a --fast
  // run accepts that; this test checks exact times).
  while (fleet.busy()) {
    batch.clear();
    fleet.Advance(fleet.next_ms() + kMin, &batch);
    Send(batch);
    produced.insert(produced.end(), batch.begin(), batch.end());
    AwaitApplied(produced);
  }
  ASSERT_TRUE(testing::WaitFor([&] {
    cases.Poll();
    return HasEvent(cases.values(), case_id, "city.case.closed");
  }, std::chrono::seconds(20))) << "case " << case_id << " did not close";

  // The workflow, in order, at the times the operators acted.
  std::map<std::string, int64_t> command_ts;
  for (const auto& r : produced) {
    if (r.topic != topics().commands) continue;
    const json c = json::parse(r.value);
    EXPECT_EQ(c["case_id"], case_id);
    command_ts[c["action"].get<std::string>()] = c["ts"].get<int64_t>();
  }
  ASSERT_EQ(command_ts.size(), 5u);
  std::vector<std::string> types;
  for (const json& e : EventsOf(cases.values(), case_id)) types.push_back(e["type"].get<std::string>());
  EXPECT_EQ(types, (std::vector<std::string>{"city.case.opened", "city.case.dispatched", "city.case.acknowledged",
                                             "city.case.enroute", "city.case.arrived", "city.case.handled",
                                             "city.case.verified", "city.case.closed"}));
  const std::map<std::string, std::string> acted = {{"city.case.acknowledged", "acknowledge"},
                                                    {"city.case.enroute", "enroute"},
                                                    {"city.case.arrived", "arrive"},
                                                    {"city.case.handled", "handled"},
                                                    {"city.case.verified", "verify_pass"},
                                                    {"city.case.closed", "verify_pass"}};
  for (const json& e : EventsOf(cases.values(), case_id)) {
    auto it = acted.find(e["type"].get<std::string>());
    if (it == acted.end()) continue;
    EXPECT_EQ(*ParseRfc3339Ms(e["time"].get<std::string>()), command_ts[it->second]) << e.dump();
    if (e["type"] == "city.case.enroute") {
      EXPECT_EQ(e["data"]["unit"], "drain-1");
    }
  }
  EXPECT_TRUE(OfType(cases.values(), "city.command.rejected").empty());
  const json order = OfType(dispatch.values(), "city.dispatch.order").at(0);
  EXPECT_EQ(order["data"]["recommended_unit"]["unit_id"], "drain-1");

  // The engine's view of the unit ends where the fleet's unit is: back at
  // its base, available, no case, as of its last report.
  const auto unit = fleet.Find("drain-1");
  ASSERT_TRUE(unit);
  EXPECT_EQ(unit->status, UnitStatus::kAvailable);
  int64_t last_report = 0;
  int64_t reports = 0, enroute = 0;
  for (const auto& r : produced) {
    if (r.topic != topics().units) continue;
    ++reports;
    if (r.key != "drain-1") continue;
    last_report = r.ts_ms;
    if (json::parse(r.value)["status"] == "enroute") ++enroute;
  }
  EXPECT_GT(enroute, 3) << "positions on the way";
  json state;
  ASSERT_TRUE(testing::WaitFor([&] {
    state = StoredJson(engine_->store().GetState("unit/drain-1"));
    return state.is_object() && state.value("ts", int64_t{0}) == last_report;
  }, std::chrono::seconds(20))) << state.dump();
  EXPECT_EQ(state["status"], "available");
  EXPECT_NEAR(state["lat"].get<double>(), unit->position.lat, 1e-6);
  EXPECT_NEAR(state["lon"].get<double>(), unit->position.lon, 1e-6);
  EXPECT_FALSE(state.contains("assigned_case"));
  const json stored = StoredJson(engine_->store().GetCase(case_id));
  ASSERT_TRUE(stored.is_object());
  EXPECT_EQ(stored["status"], "closed");
  ASSERT_EQ(stored["tasks"].size(), 1u);
  EXPECT_EQ(stored["tasks"][0]["unit"], unit->unit->id);

  // Every report reached the engine and was applied; nothing went to the DLQ.
  ASSERT_TRUE(testing::WaitFor([&] {
    return metrics_.CounterTotal("cityloop_unit_updates_total", {{"outcome", "applied"}}) == reports;
  }, std::chrono::seconds(20))) << metrics_.CounterTotal("cityloop_unit_updates_total") << " of " << reports;
  EXPECT_EQ(metrics_.CounterTotal("cityloop_ingest_rejected_total"), 0);
  EXPECT_EQ(static_cast<int64_t>(ReadTopic(bootstrap(), topics().units).size()), reports);
}

TEST_F(DispatchEndToEnd, AScriptOfCommandsWithRejectedOnesStillClosesTheCase) {
  // Gas at gas-1 above 500 ppm: an urgent gas-leak case for gas-u1.
  Readings(device("gas-1"), kT0, kT0 + 2 * kMin, 800);
  TopicTail dispatch(bootstrap(), topics().dispatch), cases(bootstrap(), topics().cases);
  const std::string case_id = AwaitOrder(dispatch);
  ASSERT_FALSE(case_id.empty());

  struct Step {
    const char* id;
    const char* action;
    const char* role;
    int64_t at;
    const char* rejected;  // the reason code, or nullptr when it applies
  };
  const Step script[] = {
      {"c-1", "arrive", "operator", kT0 + 3 * kMin, "status"},  // not acknowledged yet
      {"c-2", "acknowledge", "operator", kT0 + 4 * kMin, nullptr},
      {"c-3", "enroute", "operator", kT0 + 5 * kMin, nullptr},
      {"c-2", "acknowledge", "operator", kT0 + 5 * kMin, "duplicate_command"},
      {"c-4", "arrive", "operator", kT0 + 9 * kMin, nullptr},
      {"c-5", "handled", "operator", kT0 + 30 * kMin, nullptr},
      {"c-6", "close", "operator", kT0 + 31 * kMin, "role"},  // closing unverified needs a supervisor
      {"c-7", "verify_pass", "viewer", kT0 + 32 * kMin, "role"},
      {"c-8", "verify_pass", "operator", kT0 + 35 * kMin, nullptr},
  };
  for (const Step& s : script) {
    json c = {{"command_id", s.id}, {"case_id", case_id}, {"action", s.action}, {"actor", "op-script"},
              {"role", s.role},     {"ts", s.at},         {"note", "scripted"}};
    if (std::string(s.action) == "enroute") c["unit_id"] = "gas-u1";
    Send(topics().commands, case_id, c.dump());
  }
  ASSERT_TRUE(producer_->Flush(10000).ok());

  ASSERT_TRUE(testing::WaitFor([&] {
    cases.Poll();
    return HasEvent(cases.values(), case_id, "city.case.closed") &&
           OfType(cases.values(), "city.command.rejected").size() >= 4;
  }, std::chrono::seconds(30))) << "case " << case_id << " did not close";

  const auto rejected = OfType(cases.values(), "city.command.rejected");
  ASSERT_EQ(rejected.size(), 4u);
  size_t next = 0;
  for (const Step& s : script) {
    if (!s.rejected) continue;
    const json& r = rejected.at(next++);
    EXPECT_EQ(r["subject"], case_id);
    EXPECT_EQ(r["data"]["command_id"], s.id);
    EXPECT_EQ(r["data"]["action"], s.action);
    EXPECT_EQ(r["data"]["reason"], s.rejected) << r.dump();
  }
  std::vector<std::string> types;
  for (const json& e : EventsOf(cases.values(), case_id)) types.push_back(e["type"].get<std::string>());
  EXPECT_EQ(types, (std::vector<std::string>{"city.case.opened", "city.case.dispatched", "city.case.acknowledged",
                                             "city.case.enroute", "city.case.arrived", "city.case.handled",
                                             "city.case.verified", "city.case.closed"}));
  const json closed = EventsOf(cases.values(), case_id).back();
  EXPECT_EQ(*ParseRfc3339Ms(closed["time"].get<std::string>()), kT0 + 35 * kMin);
  EXPECT_EQ(closed["data"]["verified"], true);
  EXPECT_EQ(metrics_.CounterTotal("cityloop_commands_total", {{"outcome", "rejected"}}), 4);
  EXPECT_EQ(metrics_.CounterTotal("cityloop_commands_total", {{"outcome", "applied"}}), 5);
}

// A settled case leaves the engine's memory an hour of event time after its
// last change (it stays in the store and the API); a supervisor's reopen
// reads it back and carries on where it was.
TEST_F(DispatchEndToEnd, ASettledCaseLeavesMemoryAndAReopenReadsItBack) {
  Readings(device("gas-1"), kT0, kT0 + 2 * kMin, 800);
  TopicTail dispatch(bootstrap(), topics().dispatch), cases(bootstrap(), topics().cases);
  const std::string case_id = AwaitOrder(dispatch);
  ASSERT_FALSE(case_id.empty());
  auto command = [&](const std::string& id, const std::string& action, const std::string& role, int64_t at) {
    json c = {{"command_id", id}, {"case_id", case_id}, {"action", action}, {"actor", "op-script"},
              {"role", role},     {"ts", at},           {"note", "scripted"}};
    if (action == "enroute") c["unit_id"] = "gas-u1";
    Send(topics().commands, case_id, c.dump());
  };
  int n = 0;
  for (const char* action : {"acknowledge", "enroute", "arrive", "handled", "verify_pass"}) {
    ++n;
    command("c-" + std::to_string(n), action, "operator", kT0 + (3 + n) * kMin);
  }
  ASSERT_TRUE(producer_->Flush(10000).ok());
  ASSERT_TRUE(testing::WaitFor([&] {
    cases.Poll();
    return HasEvent(cases.values(), case_id, "city.case.closed");
  }, std::chrono::seconds(30))) << "case " << case_id << " did not close";
  EXPECT_EQ(metrics_.CounterTotal("cityloop_cases_evicted_total"), 0);

  // Normal readings for 90 minutes move event time on: the case leaves memory.
  Readings(device("gas-1"), kT0 + 10 * kMin, kT0 + 100 * kMin, 5);
  ASSERT_TRUE(testing::WaitFor([&] { return metrics_.CounterTotal("cityloop_cases_evicted_total") >= 1; },
                               std::chrono::seconds(30)))
      << "the closed case stayed in memory";
  EXPECT_EQ(metrics_.GaugeTotal("cityloop_cases_in_memory"), 0);
  EXPECT_EQ(StoredJson(engine_->store().GetCase(case_id)).value("status", ""), "closed");

  // A repeated command id is still known; the reopen applies.
  command("c-5", "verify_pass", "operator", kT0 + 101 * kMin);
  command("c-6", "reopen", "supervisor", kT0 + 102 * kMin);
  ASSERT_TRUE(producer_->Flush(10000).ok());
  ASSERT_TRUE(testing::WaitFor([&] {
    cases.Poll();
    return HasEvent(cases.values(), case_id, "city.case.reopened");
  }, std::chrono::seconds(30))) << "the reopen of the evicted case did not apply";
  const auto rejected = OfType(cases.values(), "city.command.rejected");
  ASSERT_EQ(rejected.size(), 1u);
  EXPECT_EQ(rejected[0]["data"]["reason"], "duplicate_command");
  EXPECT_EQ(StoredJson(engine_->store().GetCase(case_id)).value("reopens", 0), 1);
}

TEST_F(DispatchEndToEnd, SimulateWithOperatorsClosesEveryCaseItsUnitsTake) {
  app::SimulationRun run;
  run.bootstrap = bootstrap();
  run.paced = false;
  run.operate = true;
  run.operate_linger_ms = 8000;  // the engine joins its group and answers within this
  run.sim.seed = 4;
  run.sim.start_ms = kT0;
  run.sim.duration_ms = 40 * kMin;
  run.sim.rate = 0.1;  // three devices every 30 s
  run.sim.incident_every_ms = 6 * kMin;
  std::atomic<bool> stop_sim{false};
  Result<app::SimulationStats> stats = Status::Unavailable("not run");
  // A fast run reads the clock only to bound its wait for late orders.
  std::thread sim([&] { stats = app::RunSimulation(city_, run, SystemClock::instance(), stop_sim); });
  TopicTail cases(bootstrap(), topics().cases);
  sim.join();
  ASSERT_TRUE(stats.ok()) << stats.status().ToString();
  ASSERT_GE(stats->incidents, 1);
  ASSERT_GE(stats->orders_taken, 1) << "no order reached the fleet";
  EXPECT_EQ(stats->by_topic[topics().units], stats->unit_reports);
  EXPECT_EQ(stats->by_topic[topics().commands], stats->commands);

  // Every case the simulated operators acknowledged goes all the way.
  std::set<std::string> worked;
  ASSERT_TRUE(testing::WaitFor([&] {
    cases.Poll();
    worked.clear();
    for (const json& e : OfType(cases.values(), "city.case.acknowledged")) worked.insert(e["subject"].get<std::string>());
    if (static_cast<int64_t>(worked.size()) < stats->orders_taken) return false;
    for (const std::string& id : worked) {
      if (!HasEvent(cases.values(), id, "city.case.closed")) return false;
    }
    return true;
  }, std::chrono::seconds(30))) << worked.size() << " of " << stats->orders_taken << " taken cases";
  EXPECT_EQ(static_cast<int64_t>(worked.size()), stats->orders_taken);
  EXPECT_TRUE(OfType(cases.values(), "city.command.rejected").empty());
  EXPECT_EQ(metrics_.CounterTotal("cityloop_ingest_rejected_total"), 0);
}

}  // namespace
}  // namespace cityloop
