// Crash safety: the broker runs in its own process, the engine is a child
// process killed with SIGKILL at named points of its loop and at arbitrary
// moments mid-stream, then restarted on the same store. Afterwards no case is
// lost or doubled, every input was applied once, and output events repeat
// only with the same CloudEvents id and the same content.
#include <gtest/gtest.h>

#include <chrono>
#include <map>
#include <set>

#include "core/case_json.h"
#include "core/config.h"
#include "core/time_util.h"
#include "ingest/offset_query.h"
#include "storage/store.h"
#include "tests/support/pipeline_support.h"
#include "tests/support/test_support.h"

namespace cityloop {
namespace {

using nlohmann::json;
using testing::ChildProcess;

std::string ReplaceOnce(std::string text, const std::string& from, const std::string& to) {
  auto pos = text.find(from);
  EXPECT_NE(pos, std::string::npos) << from;
  if (pos != std::string::npos) text.replace(pos, from.size(), to);
  return text;
}

std::vector<json> ReadJsonLines(const std::string& path) {
  std::vector<json> out;
  std::string text = testing::ReadFile(path), line;
  for (char c : text) {
    if (c != '\n') {
      line += c;
    } else if (!line.empty()) {
      out.push_back(json::parse(line));
      line.clear();
    }
  }
  return out;
}

class CrashTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // Small batches, so the stream spans many WriteBatches to crash between.
    config_ = dir_.file("cityloop.yaml");
    testing::WriteFile(config_, ReplaceOnce(testing::ReadFile(testing::ExampleConfigPath()),
                                            "max_messages: 1000", "max_messages: 150"));
    // A killed member leaves the group only when its session times out: keep that short.
    testing::WriteFile(config_, ReplaceOnce(testing::ReadFile(config_), "properties: {}",
                                            "properties: {\"session.timeout.ms\": \"6000\", \"heartbeat.interval.ms\": \"500\"}"));
    broker_ = std::make_unique<ChildProcess>(
        std::vector<std::string>{bin_, "broker", "--config", config_, "--bootstrap-file", dir_.file("bootstrap")},
        dir_.file("broker.log"));
    ASSERT_TRUE(testing::WaitFor([&] { return !testing::ReadFile(dir_.file("bootstrap")).empty(); }))
        << testing::ReadFile(dir_.file("broker.log"));
    bootstrap_ = testing::ReadFile(dir_.file("bootstrap"));
    while (!bootstrap_.empty() && (bootstrap_.back() == '\n' || bootstrap_.back() == ' ')) bootstrap_.pop_back();
  }

  std::vector<std::string> EngineArgs(bool until_caught_up) {
    std::vector<std::string> a{bin_, "run", "--config", config_, "--bootstrap", bootstrap_, "--store",
                               dir_.file("store"), "--listen", "127.0.0.1:0"};
    if (until_caught_up) a.push_back("--exit-when-caught-up");
    return a;
  }

  testing::TempDir dir_;
  std::string bin_ = testing::CityloopBinary();
  std::string config_;
  std::string bootstrap_;
  std::unique_ptr<ChildProcess> broker_;
};

TEST_F(CrashTest, KilledAnywhereAndRestartedNothingIsLostOrDoubled) {
  // The whole input is in Kafka before the first engine starts.
  const int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::system_clock::now().time_since_epoch()).count();
  const int64_t start = now - 3 * 3600000;
  ChildProcess sim({bin_, "simulate", "--bootstrap", bootstrap_, "--config", config_, "--fast", "--duration", "5400",
                    "--rate", "10", "--seed", "11", "--incident-every", "4m", "--start", std::to_string(start),
                    "--truth", dir_.file("truth.jsonl")},
                   dir_.file("simulate.log"));
  ASSERT_EQ(sim.Wait(std::chrono::seconds(120)), 0) << testing::ReadFile(dir_.file("simulate.log"));
  const auto truth = ReadJsonLines(dir_.file("truth.jsonl"));
  ASSERT_GE(truth.size(), 5u);

  // Crash at each named point of the loop, a few batches in.
  // Points counted in batches are always reached; the first three consume
  // only a few batches each. after_publish waits for Kafka's first
  // acknowledgement and after_commit for the commit timer, so the input may
  // run out before them: for those two a clean exit is accepted too.
  struct Point {
    const char* spec;
    bool timing_dependent;
  };
  const Point points[] = {{"after_poll:3", false},   {"before_write:4", false},  {"after_write:6", false},
                          {"after_write:15", false}, {"after_publish:1", true}, {"after_commit:2", true}};
  for (const Point& point : points) {
    ChildProcess engine(EngineArgs(true), dir_.file("engine.log"),
                        {std::string("CITYLOOP_FAULT_POINT=") + point.spec});
    const int rc = engine.Wait(std::chrono::seconds(120));
    if (point.timing_dependent && rc == 0) continue;
    ASSERT_EQ(rc, 128 + 9) << point.spec << " was not reached\n" << testing::ReadFile(engine.log_path());
  }
  // And at arbitrary moments: as soon as some cases are out.
  for (int round = 0; round < 2; ++round) {
    const size_t seen = testing::OfType(testing::ParseValues(testing::ReadTopic(bootstrap_, "cityloop.cases")),
                                        "city.case.opened").size();
    ChildProcess engine(EngineArgs(false), dir_.file("engine.log"));
    testing::WaitFor([&] {
      return testing::OfType(testing::ParseValues(testing::ReadTopic(bootstrap_, "cityloop.cases")),
                             "city.case.opened").size() > seen || !engine.Running();
    });
    engine.Kill(SIGKILL);
    engine.Wait();
  }
  // Finally run to the end of the input.
  {
    ChildProcess engine(EngineArgs(true), dir_.file("engine.log"));
    ASSERT_EQ(engine.Wait(std::chrono::seconds(180)), 0) << testing::ReadFile(engine.log_path());
  }

  // Every input applied: stored offsets reach the end of every partition.
  auto query = ingest::OffsetQuery::Create(bootstrap_);
  ASSERT_TRUE(query.ok());
  auto store = storage::Store::Open(dir_.file("store"));
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  for (const char* topic : {"city.sensors", "city.reports", "city.camera.detections"}) {
    auto highs = (*query)->HighWatermarks(topic);
    ASSERT_TRUE(highs.ok()) << topic;
    for (const auto& [p, high] : *highs) {
      EXPECT_EQ((*store)->GetOffset({topic, p}).value_or(0), high) << topic << "/" << p;
    }
  }

  // No case lost, none doubled; each signal applied once.
  std::map<std::string, Case> cases;
  ASSERT_TRUE((*store)->ForEachCase([&](std::string_view id, std::string_view text) {
    auto c = ParseCaseJson(text);
    EXPECT_TRUE(c.ok());
    if (c.ok()) cases[std::string(id)] = *c;
    return true;
  }).ok());
  // One case per incident, plus the cases a correlation absorbed into it (truth "merged").
  size_t absorbed = 0;
  for (const auto& inc : truth) absorbed += inc.value("merged", nlohmann::json::array()).size();
  EXPECT_EQ(cases.size(), truth.size() + absorbed);
  for (const auto& inc : truth) {
    int n = 0;
    for (const auto& [id, c] : cases) {
      n += c.category == inc["category"] && c.cell_code == inc["cell"] &&
           c.first_event_ms >= inc["start"].get<int64_t>() && c.first_event_ms <= inc["end"].get<int64_t>();
    }
    EXPECT_EQ(n, 1) << inc.dump();
  }
  for (const auto& [id, c] : cases) {
    std::set<std::string> sig_ids, inputs;
    for (const auto& s : c.signals) {
      EXPECT_TRUE(sig_ids.insert(s.id).second) << id << " has signal " << s.id << " twice";
      // A correlation's signal names the input of the member that completed it.
      if (s.source == SignalSource::kCorrelation) continue;
      EXPECT_TRUE(inputs.insert(s.input.ToString()).second) << id << " applied input " << s.input.ToString() << " twice";
    }
  }
  auto outbox_left = 0;
  ASSERT_TRUE((*store)->ForEachOutbox([&](const storage::OutboxRecord&) {
    ++outbox_left;
    return true;
  }).ok());
  EXPECT_EQ(outbox_left, 0);

  // Output may repeat, but only as the same event: same id, same content.
  for (const char* topic : {"cityloop.cases", "cityloop.dispatch"}) {
    std::map<std::string, std::string> by_id;
    std::set<std::string> subjects;
    for (const auto& e : testing::ParseValues(testing::ReadTopic(bootstrap_, topic))) {
      const std::string id = e["id"].get<std::string>();
      auto [it, fresh] = by_id.emplace(id, e.dump());
      EXPECT_TRUE(fresh || it->second == e.dump()) << topic << ": event " << id << " repeated with other content";
      subjects.insert(e["subject"].get<std::string>());
    }
    // Every case is on cityloop.cases; the dispatched ones on cityloop.dispatch.
    std::set<std::string> case_ids;
    for (const auto& [id, c] : cases) {
      if (std::string(topic) == "cityloop.cases" || c.dispatched_ms != 0) case_ids.insert(id);
    }
    EXPECT_EQ(subjects, case_ids) << topic;
  }
}

}  // namespace
}  // namespace cityloop
