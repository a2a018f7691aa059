// End to end on the embedded broker: the simulator produces a seeded city
// with injected incidents (sensor readings, camera detections, citizen
// reports), the engine consumes it over the Kafka protocol, and what it
// published is read back with a real consumer and checked against the
// simulator's truth: every incident leaves exactly one surviving case (cases
// it absorbs show as merged), and no case exists without an incident.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <climits>
#include <cstdlib>
#include <map>
#include <set>

#include "app/engine.h"
#include "app/pipeline.h"
#include "app/simulation.h"
#include "core/shard.h"
#include "core/city.h"
#include "core/time_util.h"
#include "ingest/broker.h"
#include "ingest/simulator.h"
#include "storage/store.h"
#include "tests/support/pipeline_support.h"
#include "tests/support/test_support.h"

namespace cityloop {
namespace {

using nlohmann::json;
using testing::OfType;
using testing::ParseValues;
using testing::ReadTopic;

std::vector<json> ReadTruth(const std::string& path) {
  std::vector<json> truth;
  std::string cur;
  for (char c : testing::ReadFile(path)) {
    if (c != '\n') {
      cur += c;
      continue;
    }
    if (!cur.empty()) truth.push_back(json::parse(cur));
    cur.clear();
  }
  return truth;
}

// A case as its events on the cases topic leave it.
struct CaseView {
  std::string id;
  json last;                       // data of its newest event (a case summary)
  std::vector<json> signals;       // its own signals, then those of the cases it absorbed
  std::string merged_into;         // set by its own city.case.merged event
  std::vector<std::string> absorbed;
  bool survives() const { return last["status"] != "merged"; }
  int64_t first_fired() const {
    int64_t first = INT64_MAX;
    for (const auto& s : signals) first = std::min(first, s["fired"].get<int64_t>());
    return first;
  }
};

std::map<std::string, CaseView> Cases(const std::vector<json>& events) {
  // Events of one case are ordered by the seq in their id ("<case>:<seq>").
  std::map<std::string, std::vector<std::pair<int, const json*>>> by_case;
  for (const auto& e : events) {
    const std::string id = e["id"];
    by_case[e["subject"]].emplace_back(std::atoi(id.substr(id.rfind(':') + 1).c_str()), &e);
  }
  std::map<std::string, CaseView> out;
  for (auto& [id, list] : by_case) {
    std::sort(list.begin(), list.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
    CaseView& c = out[id];
    c.id = id;
    for (const auto& [seq, e] : list) {
      const json& d = (*e)["data"];
      c.last = d;
      if (d.contains("signal")) c.signals.push_back(d["signal"]);
      if ((*e)["type"] == "city.case.merged") {
        if (d.contains("merged_into")) c.merged_into = d["merged_into"];
        if (d.contains("absorbed")) c.absorbed.push_back(d["absorbed"]);
      }
    }
  }
  // Absorbed cases bring their signals along (chains resolved in opening order).
  for (auto& [id, c] : out) {
    for (const std::string& a : c.absorbed) {
      if (out.count(a)) c.signals.insert(c.signals.end(), out[a].signals.begin(), out[a].signals.end());
    }
  }
  return out;
}

int CellDistance(const CityModel& city, const std::string& a, const std::string& b) {
  const CellInfo* ca = city.CellByCode(a);
  const CellInfo* cb = city.CellByCode(b);
  if (!ca || !cb) return INT_MAX;
  const GridIndex& g = city.grid();
  return std::max(std::abs(g.Row(ca->index) - g.Row(cb->index)), std::abs(g.Col(ca->index) - g.Col(cb->index)));
}

// The engine's output against the truth: each incident leaves exactly one
// surviving case of its category in its cell or a neighbouring one, whose
// first signal fired while the incident lasted, at the expected priority,
// holding signals of the expected sources, with the expected cases merged
// into it; no case exists without an incident; one dispatch order per case.
void CheckCasesAgainstTruth(const CityModel& city, const std::vector<json>& truth, const std::vector<json>& events,
                            const std::vector<json>& orders) {
  const auto opened = OfType(events, "city.case.opened");
  const std::map<std::string, CaseView> cases = Cases(events);
  std::set<std::string> kinds;
  for (const auto& inc : truth) kinds.insert(inc["kind"]);
  for (const char* kind : {"device_silent", "gas_near_manhole", "flooded_road_reported", "fire_seen_by_camera"}) {
    EXPECT_TRUE(kinds.count(kind)) << "seed 7 should inject a " << kind;
  }

  // Each incident: exactly one surviving case of its category in its cell or
  // a neighbouring one, whose first signal fired while the incident lasted.
  std::set<std::string> matched, expected_merged;
  for (const auto& inc : truth) {
    std::vector<const CaseView*> hits;
    for (const auto& [id, c] : cases) {
      const int64_t fired = c.first_fired();
      if (c.survives() && c.last["category"] == inc["category"] &&
          CellDistance(city, c.last["grid"], inc["cell"]) <= 1 && fired >= inc["start"].get<int64_t>() &&
          fired <= inc["end"].get<int64_t>()) {
        hits.push_back(&c);
      }
    }
    EXPECT_EQ(hits.size(), 1u) << "incident " << inc.dump() << " left " << hits.size() << " cases: "
                               << (hits.empty() ? "" : hits[0]->last.dump() + "\n" + hits.back()->last.dump());
    if (hits.size() != 1) continue;
    const CaseView& c = *hits[0];
    EXPECT_TRUE(matched.insert(c.id).second) << "two incidents, one case: " << c.id;
    EXPECT_EQ(c.last["district"], inc["district"]) << inc.dump();
    EXPECT_EQ(c.last["department"], inc["department"]) << inc.dump();
    EXPECT_EQ(c.last["priority"], inc["priority"]) << inc.dump() << "\n" << c.last.dump();
    std::set<std::string> sources, devices;
    for (const auto& s : c.signals) {
      sources.insert(s["source"]);
      devices.insert(s["device_id"]);
    }
    for (const auto& s : inc["sources"]) EXPECT_TRUE(sources.count(s)) << c.id << " holds no " << s << " signal: " << inc.dump();
    EXPECT_TRUE(devices.count(inc["device_id"])) << c.id << " " << inc.dump();
    // The cases it absorbed: one per merged category, each with its city.case.merged.
    std::multiset<std::string> merged;
    for (const std::string& a : c.absorbed) {
      ASSERT_TRUE(cases.count(a)) << a;
      const CaseView& m = cases.at(a);
      EXPECT_EQ(m.last["status"], "merged") << a;
      EXPECT_EQ(m.merged_into, c.id) << a;
      merged.insert(m.last["category"].get<std::string>());
      expected_merged.insert(a);
    }
    EXPECT_EQ(merged, (std::multiset<std::string>(inc["merged"].begin(), inc["merged"].end()))) << inc.dump();
  }
  // No case without an incident: every case survives for one, or merged into one.
  for (const auto& [id, c] : cases) {
    EXPECT_TRUE(matched.count(id) || expected_merged.count(id)) << "a case without an injected incident: " << c.last.dump();
  }
  EXPECT_EQ(opened.size(), matched.size() + expected_merged.size());
  EXPECT_EQ(OfType(events, "city.case.merged").size(), 2 * expected_merged.size());

  // Every case got exactly one dispatch order when it opened, keyed by its
  // department — except categories that wait for an operator's confirmation;
  // a dispatched case that was merged away got its order cancelled.
  std::map<std::string, int> orders_per_case, cancels_per_case;
  for (const auto& o : orders) {
    const std::string subject = o["subject"];
    if (o["type"] == "city.dispatch.order") {
      ++orders_per_case[subject];
      EXPECT_TRUE(o["data"].contains("deadlines"));
    } else {
      EXPECT_EQ(o["type"], "city.dispatch.cancelled");
      ++cancels_per_case[subject];
      EXPECT_EQ(cases.at(subject).merged_into, o["data"]["merged_into"]);
    }
  }
  for (const auto& [id, c] : cases) {
    const Category* cat = city.FindCategory(c.last["category"].get<std::string>());
    const int dispatched = cat != nullptr && cat->requires_confirmation ? 0 : 1;
    EXPECT_EQ(orders_per_case[id], dispatched) << id;
    EXPECT_EQ(cancels_per_case[id], dispatched && !c.survives() ? 1 : 0) << id;
  }
  // CloudEvents ids are unique.
  std::set<std::string> ids;
  for (const auto& e : events) EXPECT_TRUE(ids.insert(e["id"].get<std::string>()).second) << e["id"];
}

// The scenario of both tests: 3 h of city time from 17:00 local, so the
// evening brings street-lamp rules in, with an incident slot every 3 min on
// average: every kind shows up with this seed.
ingest::SimulatorOptions Scenario() {
  ingest::SimulatorOptions o;
  o.seed = 7;
  o.start_ms = *ParseRfc3339Ms("2026-11-28T17:00:00+08:00");
  o.duration_ms = 3 * 3600000;
  o.rate = 8;
  o.incident_every_ms = 3 * 60000;
  return o;
}

// Both tests run the example city.
class EndToEnd : public ::testing::Test {
 protected:
  void SetUp() override {
    ConfigLoadResult loaded = LoadConfigFile(testing::ExampleConfigPath());
    ASSERT_TRUE(loaded.config) << (loaded.errors.empty() ? "" : loaded.errors[0].ToString());
    auto built = CityModel::Build(*loaded.config);
    ASSERT_TRUE(built.ok()) << built.status().ToString();
    city = *built;
  }
  const Config& config() const { return city->config(); }

  testing::TempDir dir;
  std::shared_ptr<const CityModel> city;
};

// Over Kafka, from a backlog: the simulator produces everything first, then
// the engine consumes the three input topics as the consumer fetches them,
// so one topic may run far ahead of another in event time (a restart after
// downtime looks the same).
TEST_F(EndToEnd, EveryInjectedIncidentLeavesExactlyOneRoutedAndDispatchedCase) {

  auto broker = ingest::EmbeddedBroker::Start(ingest::BrokerOptionsFor(config().kafka));
  ASSERT_TRUE(broker.ok()) << broker.status().ToString();
  const std::string bootstrap = (*broker)->bootstrap();

  app::SimulationRun run;
  run.bootstrap = bootstrap;
  run.truth_path = dir.file("truth.jsonl");
  run.paced = false;
  run.sim = Scenario();
  ManualClock clock(run.sim.start_ms + run.sim.duration_ms + 60000);
  std::atomic<bool> stop{false};
  auto sim = app::RunSimulation(city, run, clock, stop);
  ASSERT_TRUE(sim.ok()) << sim.status().ToString();
  ASSERT_GE(sim->incidents, 10) << "the seeded schedule should inject a fair number of incidents";
  EXPECT_GT(sim->by_topic[config().kafka.topics.camera_detections], 0);
  EXPECT_GT(sim->by_topic[config().kafka.topics.reports], 0);

  MetricsRegistry metrics;
  app::EngineOptions eo;
  eo.bootstrap = bootstrap;
  eo.store_path = dir.file("store");
  eo.exit_when_caught_up = true;
  auto engine = app::Engine::Create(city, eo, clock, &metrics);
  ASSERT_TRUE(engine.ok()) << engine.status().ToString();
  ASSERT_TRUE((*engine)->Run(stop).ok());
  EXPECT_EQ(metrics.CounterTotal("cityloop_ingest_messages_total"), sim->produced);
  EXPECT_EQ(metrics.CounterTotal("cityloop_ingest_rejected_total"), 0);

  auto events = ParseValues(ReadTopic(bootstrap, config().kafka.topics.cases));
  auto orders = ParseValues(ReadTopic(bootstrap, config().kafka.topics.dispatch));
  const std::vector<json> truth = ReadTruth(run.truth_path);
  ASSERT_EQ(static_cast<int64_t>(truth.size()), sim->incidents);
  CheckCasesAgainstTruth(*city, truth, events, orders);
}

// A stable partitioner for the in-process run (FNV-1a, as the shard router's).
int32_t PartitionOf(const std::string& key, int partitions) { return ShardOfKey(key, partitions); }

// The same city and incidents fed straight into the pipeline in the
// simulator's order (event time across all topics), micro-batch by
// micro-batch: the engine's case logic without Kafka's fetch interleaving.
TEST_F(EndToEnd, InEventTimeOrderEveryInjectedIncidentLeavesExactlyOneCase) {
  const ingest::SimulatorOptions o = Scenario();
  ManualClock clock(o.start_ms + o.duration_ms + 60000);
  auto store = storage::Store::Open(dir.file("store"));
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  MetricsRegistry metrics;
  app::Pipeline pipeline(city, store->get(), clock, &metrics, /*live=*/false);
  ASSERT_TRUE(pipeline.Restore().ok());

  ingest::Simulator sim(city, o);
  std::vector<json> truth, events, orders;
  std::map<std::pair<std::string, int32_t>, int64_t> offsets;
  std::vector<ingest::Message> batch;
  auto flush = [&] {
    app::BatchResult result;
    ASSERT_TRUE(pipeline.Process(batch, &result).ok());
    batch.clear();
    for (const auto& r : result.outbox) {
      if (r.topic == config().kafka.topics.cases) events.push_back(json::parse(r.value));
      if (r.topic == config().kafka.topics.dispatch) orders.push_back(json::parse(r.value));
    }
  };
  ingest::SimulatedReading r;
  while (sim.Next(&r)) {
    ingest::Message m;
    m.topic = r.topic;
    m.partition = PartitionOf(r.key, config().kafka.partitions);
    m.offset = offsets[{m.topic, m.partition}]++;
    m.key = r.key;
    m.value = r.value;
    m.timestamp_ms = r.ts_ms;
    batch.push_back(std::move(m));
    if (batch.size() == 500) flush();
    for (const auto& inc : sim.TakeStartedIncidents()) truth.push_back(json::parse(inc.ToJson()));
  }
  if (!batch.empty()) flush();
  for (const auto& inc : sim.TakeStartedIncidents()) truth.push_back(json::parse(inc.ToJson()));
  EXPECT_EQ(metrics.CounterTotal("cityloop_ingest_rejected_total"), 0);
  EXPECT_EQ(metrics.CounterTotal("cityloop_late_events_total"), 0);
  ASSERT_GE(truth.size(), 10u);
  CheckCasesAgainstTruth(*city, truth, events, orders);
}

}  // namespace
}  // namespace cityloop
