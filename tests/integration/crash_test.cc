// Crash safety: the broker runs in its own process, the engine is a child
// process killed with SIGKILL at named points of its loop and at arbitrary
// moments mid-stream, then restarted on the same store. Afterwards no case is
// lost or doubled, every input was applied once, and output events repeat
// only with the same CloudEvents id and the same content.
#include <gtest/gtest.h>

#include <chrono>
#include <map>

#include "core/case_json.h"
#include "core/config.h"
#include "core/time_util.h"
#include "tests/support/crash_harness.h"
#include "tests/support/pipeline_support.h"
#include "tests/support/test_support.h"

namespace cityloop {
namespace {

using nlohmann::json;
using testing::ChildProcess;

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
    testing::WriteFile(config_, testing::EditedExampleConfig(testing::CrashConfigEdits(150)));
    broker_ = std::make_unique<testing::BrokerProcess>(dir_, config_);
    ASSERT_TRUE(broker_->started());
    bootstrap_ = broker_->bootstrap();
  }

  std::vector<std::string> EngineFlags(bool until_caught_up) {
    if (until_caught_up) return {"--exit-when-caught-up"};
    return {};
  }

  testing::TempDir dir_;
  std::string bin_ = testing::CityloopBinary();
  std::string config_;
  std::string bootstrap_;
  std::unique_ptr<testing::BrokerProcess> broker_;
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
    testing::EngineProcess engine(config_, bootstrap_, dir_.file("store"), dir_.file("engine.log"), EngineFlags(true),
                                  {std::string("CITYLOOP_FAULT_POINT=") + point.spec});
    const int rc = engine.child().Wait(std::chrono::seconds(120));
    if (point.timing_dependent && rc == 0) continue;
    ASSERT_EQ(rc, 128 + 9) << point.spec << " was not reached\n" << engine.log();
  }
  // And at arbitrary moments: as soon as some cases are out.
  for (int round = 0; round < 2; ++round) {
    const size_t seen = testing::OfType(testing::ParseValues(testing::ReadTopic(bootstrap_, "cityloop.cases")),
                                        "city.case.opened").size();
    testing::EngineProcess engine(config_, bootstrap_, dir_.file("store"), dir_.file("engine.log"), EngineFlags(false));
    testing::WaitFor([&] {
      return testing::OfType(testing::ParseValues(testing::ReadTopic(bootstrap_, "cityloop.cases")),
                             "city.case.opened").size() > seen || !engine.child().Running();
    });
    engine.child().Kill(SIGKILL);
    engine.child().Wait();
  }
  // Finally run to the end of the input.
  {
    testing::EngineProcess engine(config_, bootstrap_, dir_.file("store"), dir_.file("engine.log"), EngineFlags(true));
    ASSERT_EQ(engine.child().Wait(std::chrono::seconds(180)), 0) << engine.log();
  }

  // Every input applied once, every output delivered, repeats only as the same event.
  const testing::ExactlyOnce run = testing::CheckRun(bootstrap_, dir_.file("store"));
  testing::ExpectExactlyOnce(run);
  const std::map<std::string, Case>& cases = run.cases;
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
}

}  // namespace
}  // namespace cityloop
