// Scale-out: engine processes of one consumer group on one broker split the
// shards (scale.shards), each instance with a store directory of its own, so
// a shard that moves is rebuilt from its changelog. Three instances run a
// stream that arrives in parts; one is killed -9 mid-stream, then another;
// a fourth joins; the survivors stop with SIGTERM under load and a fresh
// instance finishes.
// Afterwards every input was applied exactly once, no case is lost or
// doubled, output repeats only as the same event, and the final state equals
// that of one instance running the same input on its own.
#include <gtest/gtest.h>

#include <signal.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <map>
#include <set>

#include "app/shard_host.h"
#include "core/case_json.h"
#include "core/shard.h"
#include "ingest/kafka.h"
#include "ingest/offset_query.h"
#include "storage/store.h"
#include "tests/support/engine_process.h"
#include "tests/support/pipeline_support.h"
#include "tests/support/test_support.h"

namespace cityloop {
namespace {

using nlohmann::json;
using testing::ChildProcess;

constexpr int kShards = 4;

// The example city, sharded, with small batches (many writes to die between)
// and short sessions (a killed member's shards move on within seconds).
// `suffix` renames the group and the output and work topics: an independent deployment.
std::string ShardedConfig(const std::string& suffix) {
  std::string text = testing::ReadFile(testing::ExampleConfigPath());
  auto replace = [&](const std::string& from, const std::string& to) {
    const auto pos = text.find(from);
    EXPECT_NE(pos, std::string::npos) << from;
    if (pos != std::string::npos) text.replace(pos, from.size(), to);
  };
  replace("max_messages: 1000", "max_messages: 150");
  replace("consumer_properties: {}",
          R"(consumer_properties: {"session.timeout.ms": "6000", "heartbeat.interval.ms": "500"})");
  replace("  shards: 0", "  shards: " + std::to_string(kShards));
  if (!suffix.empty()) {
    replace("group_id: cityloop ", "group_id: cityloop" + suffix + " ");
    for (const std::string topic : {"cases", "dispatch", "dlq"}) {
      replace(topic + ": cityloop." + topic + "\n", topic + ": cityloop." + topic + suffix + "\n");
    }
    replace("    dlq:", "    work: cityloop.internal.work" + suffix + "\n    changelog: cityloop.internal.changelog" +
                           suffix + "\n    dlq:");
  }
  return text;
}

// Every shard's cases, by id.
std::map<std::string, Case> ReadCases(const std::string& store_dir) {
  std::map<std::string, Case> cases;
  for (int s = 0; s < kShards; ++s) {
    const std::string path = app::ShardStorePath(store_dir, s);
    if (!std::filesystem::exists(path)) continue;
    auto store = storage::Store::Open(path);
    EXPECT_TRUE(store.ok()) << store.status().ToString();
    if (!store.ok()) continue;
    EXPECT_TRUE((*store)->ForEachCase([&](std::string_view id, std::string_view text) {
      auto c = ParseCaseJson(text);
      EXPECT_TRUE(c.ok());
      EXPECT_EQ(ShardOfCaseId(id, kShards), s) << id << " is stored in shard " << s;
      EXPECT_TRUE(c.ok() && cases.emplace(std::string(id), *c).second) << id << " is in two shards";
      return true;
    }).ok());
    size_t outbox_left = 0;
    EXPECT_TRUE((*store)->ForEachOutbox([&](const storage::OutboxRecord&) { return ++outbox_left, true; }).ok());
    EXPECT_EQ(outbox_left, 0u) << "shard " << s << " left records unpublished";
  }
  return cases;
}

// The highest stored next offset of topic/partition over all shards.
int64_t AppliedUpTo(const std::string& store_dir, const std::string& topic, int32_t partition) {
  int64_t next = 0;
  for (int s = 0; s < kShards; ++s) {
    auto store = storage::Store::Open(app::ShardStorePath(store_dir, s));
    if (store.ok()) next = std::max(next, (*store)->GetOffset({topic, partition}).value_or(0));
  }
  return next;
}

// The state as content, without ids (which depend on arrival order across
// shards' inputs) and without what the wall clock moves after the input ends
// (SLA lights, escalation), and without which of a case's signals came first
// (a report and a reading on two topics may arrive either way): per case its
// category, cell, department, whether it was merged, and its signal ids
// (which hold their times); sorted.
std::string StateDigest(const std::map<std::string, Case>& cases) {
  std::vector<std::string> lines;
  for (const auto& [id, c] : cases) {
    std::vector<std::string> signals;
    for (const auto& s : c.signals) signals.push_back(s.id);
    std::sort(signals.begin(), signals.end());
    std::string line = c.category + " " + c.cell_code + " " + c.department + (c.merged_into.empty() ? "" : " merged");
    for (const auto& s : signals) line += " " + s;
    lines.push_back(line);
  }
  std::sort(lines.begin(), lines.end());
  std::string out;
  for (const auto& l : lines) out += l + "\n";
  return out;
}

size_t CasesOpened(const std::string& bootstrap) {
  return testing::OfType(testing::ParseValues(testing::ReadTopic(bootstrap, "cityloop.cases")), "city.case.opened")
      .size();
}

class ScaleOutTest : public ::testing::Test {
 protected:
  void SetUp() override {
    config_ = dir_.file("cityloop.yaml");
    testing::WriteFile(config_, ShardedConfig(""));
    broker_ = std::make_unique<ChildProcess>(
        std::vector<std::string>{bin_, "broker", "--config", config_, "--bootstrap-file", dir_.file("bootstrap")},
        dir_.file("broker.log"));
    ASSERT_TRUE(testing::WaitFor([&] { return !testing::ReadFile(dir_.file("bootstrap")).empty(); }))
        << testing::ReadFile(dir_.file("broker.log"));
    bootstrap_ = testing::ReadFile(dir_.file("bootstrap"));
    while (!bootstrap_.empty() && (bootstrap_.back() == '\n' || bootstrap_.back() == ' ')) bootstrap_.pop_back();
  }

  // An instance with a store directory of its own (name-store).
  std::unique_ptr<ChildProcess> Instance(const std::string& name, const std::string& config, bool until_caught_up) {
    std::vector<std::string> a{bin_, "run", "--config", config, "--bootstrap", bootstrap_, "--store",
                               dir_.file(name + "-store"), "--listen", "127.0.0.1:0"};
    if (until_caught_up) a.push_back("--exit-when-caught-up");
    return std::make_unique<ChildProcess>(a, dir_.file(name + ".log"));
  }

  testing::TempDir dir_;
  std::string bin_ = testing::CityloopBinary();
  std::string config_;
  std::string bootstrap_;
  std::unique_ptr<ChildProcess> broker_;
};

TEST_F(ScaleOutTest, InstancesKilledAndAddedApplyEveryInputOnceAndEndAsOneInstanceWould) {
  const int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::system_clock::now().time_since_epoch()).count();
  // The input comes in four parts of 22.5 simulated minutes (about five incidents each), one
  // before each step, so every wait below has new cases to see however fast the instances are.
  size_t seen = 0;  // cases opened before the latest part
  auto next_part = [&](int part) {
    seen = CasesOpened(bootstrap_);
    ChildProcess sim({bin_, "simulate", "--bootstrap", bootstrap_, "--config", config_, "--fast", "--duration", "1350",
                      "--rate", "10", "--seed", std::to_string(11 + part), "--incident-every", "4m", "--start",
                      std::to_string(now - 3 * 3600000 + part * 1350000)},
                     dir_.file("simulate-" + std::to_string(part) + ".log"));
    return sim.Wait(std::chrono::seconds(120)) == 0;
  };
  auto progress = [&] {
    return testing::WaitFor([&] { return CasesOpened(bootstrap_) > seen; }, std::chrono::seconds(120));
  };

  // Three instances share the first part.
  ASSERT_TRUE(next_part(0));
  std::vector<std::unique_ptr<ChildProcess>> live;
  for (int i = 0; i < 3; ++i) live.push_back(Instance("engine" + std::to_string(i), config_, false));
  ASSERT_TRUE(progress()) << testing::ReadFile(dir_.file("engine0.log"));
  live[0]->Kill(SIGKILL);
  EXPECT_EQ(live[0]->Wait(), 128 + 9);
  ASSERT_TRUE(next_part(1));
  ASSERT_TRUE(progress()) << testing::ReadFile(dir_.file("engine1.log"));
  live[1]->Kill(SIGKILL);
  EXPECT_EQ(live[1]->Wait(), 128 + 9);
  live.push_back(Instance("engine3", config_, false));
  ASSERT_TRUE(next_part(2));
  ASSERT_TRUE(progress()) << testing::ReadFile(dir_.file("engine3.log"));
  // The survivors stop cleanly under load (the last part just produced), then one instance
  // takes everything to the end.
  ASSERT_TRUE(next_part(3));
  const int64_t term_at = testing::SteadyMs();
  for (size_t i = 2; i < live.size(); ++i) live[i]->Kill(SIGTERM);
  for (size_t i = 2; i < live.size(); ++i) {
    EXPECT_EQ(live[i]->Wait(std::chrono::seconds(60)), 0) << testing::ReadFile(live[i]->log_path());
  }
  const int64_t shutdown_ms = testing::SteadyMs() - term_at;
  // A new machine, as it were: every shard comes to it through the changelog.
  const int64_t last_at = testing::SteadyMs();
  {
    auto last = Instance("engine4", config_, true);
    ASSERT_EQ(last->Wait(std::chrono::seconds(300)), 0) << testing::ReadFile(last->log_path());
  }
  const int64_t last_ms = testing::SteadyMs() - last_at;
  const std::string stores = dir_.file("engine4-store");

  // Every input applied: the shards' stored offsets reach the end of every input partition.
  auto query = ingest::OffsetQuery::Create(bootstrap_);
  ASSERT_TRUE(query.ok());
  int64_t inputs = 0, lost = 0;
  for (const char* topic : {"city.sensors", "city.reports", "city.camera.detections"}) {
    auto highs = (*query)->HighWatermarks(topic);
    ASSERT_TRUE(highs.ok()) << topic;
    for (const auto& [p, high] : *highs) {
      const int64_t applied = AppliedUpTo(stores, topic, p);
      EXPECT_EQ(applied, high) << topic << "/" << p;
      inputs += high;
      lost += std::max<int64_t>(0, high - applied);
    }
  }

  // No case doubled, no input applied twice, every case in the shard its id names.
  const auto cases = ReadCases(stores);
  ASSERT_GE(cases.size(), 9u);
  int64_t doubled = 0;
  for (const auto& [id, c] : cases) {
    std::set<std::string> sig_ids, applied_inputs;
    for (const auto& s : c.signals) {
      const bool fresh_signal = sig_ids.insert(s.id).second;
      EXPECT_TRUE(fresh_signal) << id << " has signal " << s.id << " twice";
      doubled += !fresh_signal;
      // A correlation's signal names its last member's input; timer signals have none.
      if (s.source == SignalSource::kCorrelation || s.input.offset < 0) continue;
      const bool fresh_input = applied_inputs.insert(s.input.ToString()).second;
      EXPECT_TRUE(fresh_input) << id << " applied input " << s.input.ToString() << " twice";
      doubled += !fresh_input;
    }
  }
  // Output repeats only as the same event; every case is on the cases topic.
  std::map<std::string, std::string> by_id;
  std::set<std::string> subjects;
  int64_t output_repeats = 0;
  for (const auto& e : testing::ParseValues(testing::ReadTopic(bootstrap_, "cityloop.cases"))) {
    auto [it, fresh] = by_id.emplace(e["id"].get<std::string>(), e.dump());
    EXPECT_TRUE(fresh || it->second == e.dump()) << "event " << it->first << " repeated with other content";
    output_repeats += !fresh;
    subjects.insert(e["subject"].get<std::string>());
  }
  for (const auto& [id, c] : cases) {
    EXPECT_TRUE(subjects.count(id)) << id << " never published";
    lost += !subjects.count(id);
  }

  // The oracle: one instance alone on the same input, as its own deployment.
  const std::string oracle_config = dir_.file("oracle.yaml");
  testing::WriteFile(oracle_config, ShardedConfig("-oracle"));
  {
    // Its internal topics exist before it starts (the broker made only the first deployment's): a
    // record to each makes the embedded broker create it with 4 partitions; the shard dead-letters
    // the work topic's, and changelog readers skip what is not theirs.
    ingest::ProducerOptions po;
    po.bootstrap = bootstrap_;
    auto producer = ingest::KafkaProducer::Create(po);
    ASSERT_TRUE(producer.ok());
    for (const char* topic : {"cityloop.internal.work-oracle", "cityloop.internal.changelog-oracle"}) {
      ASSERT_TRUE((*producer)->Produce(topic, "probe", "{}").ok());
    }
    ASSERT_TRUE((*producer)->Flush(10000).ok());
  }
  {
    auto oracle = Instance("oracle", oracle_config, true);
    ASSERT_EQ(oracle->Wait(std::chrono::seconds(300)), 0) << testing::ReadFile(oracle->log_path());
  }
  const auto expected = ReadCases(dir_.file("oracle-store"));
  EXPECT_EQ(cases.size(), expected.size());
  const bool digest_equal = StateDigest(cases) == StateDigest(expected);
  EXPECT_TRUE(digest_equal) << StateDigest(cases) << "\n-- one instance alone --\n" << StateDigest(expected);
  std::printf("RELIABILITY: scaleout instances=3 killed=2 joined=1 inputs=%lld cases=%zu oracle_cases=%zu lost=%lld "
              "doubled=%lld output_repeats=%lld digest_equal=%d sigterm_shutdown_ms=%lld "
              "restore_all_and_finish_ms=%lld\n",
              static_cast<long long>(inputs), cases.size(), expected.size(), static_cast<long long>(lost),
              static_cast<long long>(doubled), static_cast<long long>(output_repeats), digest_equal ? 1 : 0,
              static_cast<long long>(shutdown_ms), static_cast<long long>(last_ms));
}

}  // namespace
}  // namespace cityloop
