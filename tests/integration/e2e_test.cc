// End to end on the embedded broker: the simulator produces a seeded city
// with injected incidents, the engine consumes it over the Kafka protocol, and
// what it published is read back with a real consumer and checked against the
// simulator's truth.
#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <set>

#include "app/engine.h"
#include "app/simulation.h"
#include "core/city.h"
#include "core/time_util.h"
#include "ingest/broker.h"
#include "tests/support/pipeline_support.h"
#include "tests/support/test_support.h"

namespace cityloop {
namespace {

using nlohmann::json;
using testing::OfType;
using testing::ParseValues;
using testing::ReadTopic;

TEST(EndToEnd, EveryInjectedIncidentOpensExactlyOneRoutedAndDispatchedCase) {
  testing::TempDir dir;
  ConfigLoadResult loaded = LoadConfigFile(testing::ExampleConfigPath());
  ASSERT_TRUE(loaded.config) << (loaded.errors.empty() ? "" : loaded.errors[0].ToString());
  auto city = CityModel::Build(*loaded.config);
  ASSERT_TRUE(city.ok()) << city.status().ToString();

  auto broker = ingest::EmbeddedBroker::Start(ingest::BrokerOptionsFor(loaded.config->kafka));
  ASSERT_TRUE(broker.ok()) << broker.status().ToString();
  const std::string bootstrap = (*broker)->bootstrap();

  // 2 h of city time from 17:00 local, so the evening brings street-lamp rules in.
  const int64_t start = *ParseRfc3339Ms("2026-11-28T17:00:00+08:00");
  const int64_t duration = 2 * 3600000;
  ManualClock clock(start + duration + 60000);
  app::SimulationRun run;
  run.bootstrap = bootstrap;
  run.truth_path = dir.file("truth.jsonl");
  run.paced = false;
  run.sim.seed = 7;
  run.sim.start_ms = start;
  run.sim.duration_ms = duration;
  run.sim.rate = 10;
  run.sim.incident_every_ms = 5 * 60000;
  std::atomic<bool> stop{false};
  auto sim = app::RunSimulation(*city, run, clock, stop);
  ASSERT_TRUE(sim.ok()) << sim.status().ToString();
  ASSERT_GE(sim->incidents, 6) << "the seeded schedule should inject a fair number of incidents";

  MetricsRegistry metrics;
  app::EngineOptions eo;
  eo.bootstrap = bootstrap;
  eo.store_path = dir.file("store");
  eo.exit_when_caught_up = true;
  auto engine = app::Engine::Create(*city, eo, clock, &metrics);
  ASSERT_TRUE(engine.ok()) << engine.status().ToString();
  ASSERT_TRUE((*engine)->Run(stop).ok());
  EXPECT_EQ(metrics.CounterTotal("cityloop_ingest_messages_total"), sim->produced);
  EXPECT_EQ(metrics.CounterTotal("cityloop_ingest_rejected_total"), 0);

  auto events = ParseValues(ReadTopic(bootstrap, loaded.config->kafka.topics.cases));
  auto orders = ParseValues(ReadTopic(bootstrap, loaded.config->kafka.topics.dispatch));
  auto opened = OfType(events, "city.case.opened");

  std::vector<json> truth;
  for (const auto& line : [&] {
         std::vector<std::string> lines;
         std::string text = testing::ReadFile(run.truth_path), cur;
         for (char c : text) {
           if (c == '\n') {
             if (!cur.empty()) lines.push_back(cur);
             cur.clear();
           } else {
             cur += c;
           }
         }
         return lines;
       }()) {
    truth.push_back(json::parse(line));
  }
  ASSERT_EQ(static_cast<int64_t>(truth.size()), sim->incidents);

  // Match each incident to the case opened for its category in its cell while it lasted.
  std::set<std::string> matched;
  for (const auto& inc : truth) {
    std::vector<json> hits;
    for (const auto& e : opened) {
      const auto& d = e["data"];
      const int64_t fired = d["signal"]["fired"].get<int64_t>();
      if (d["category"] == inc["category"] && d["grid"] == inc["cell"] && fired >= inc["start"].get<int64_t>() &&
          fired <= inc["end"].get<int64_t>()) {
        hits.push_back(e);
      }
    }
    ASSERT_EQ(hits.size(), 1u) << "incident " << inc.dump() << " opened " << hits.size() << " cases: "
                               << (hits.empty() ? "" : hits[0].dump() + "\n" + hits.back().dump());
    const auto& d = hits[0]["data"];
    EXPECT_EQ(d["district"], inc["district"]) << inc.dump();
    EXPECT_EQ(d["department"], inc["department"]) << inc.dump();
    EXPECT_EQ(d["signal"]["device_id"], inc["device_id"]) << inc.dump();
    EXPECT_TRUE(matched.insert(hits[0]["subject"].get<std::string>()).second) << "two incidents, one case";
  }
  EXPECT_EQ(opened.size(), truth.size()) << "a case opened without an injected incident";

  // Every case got exactly one dispatch order, keyed by its department.
  std::map<std::string, int> orders_per_case;
  for (const auto& o : orders) ++orders_per_case[o["subject"].get<std::string>()];
  for (const auto& id : matched) EXPECT_EQ(orders_per_case[id], 1) << id;
  EXPECT_EQ(orders.size(), matched.size());
  for (const auto& o : orders) {
    EXPECT_EQ(o["type"], "city.dispatch.order");
    EXPECT_TRUE(o["data"].contains("deadlines"));
  }
  // CloudEvents ids are unique.
  std::set<std::string> ids;
  for (const auto& e : events) EXPECT_TRUE(ids.insert(e["id"].get<std::string>()).second) << e["id"];
}

}  // namespace
}  // namespace cityloop
