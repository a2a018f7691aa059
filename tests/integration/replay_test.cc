// Record, replay and what-if end to end: the golden log and its digest; the
// same input at any speed, batch size and partition count giving the same
// output; a live run recorded by the engine and replayed giving the live
// run's cases and KPIs exactly; damaged logs; a what-if pair of configs; and
// replay straight from a Kafka range by offsets or by time.
#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "app/engine.h"
#include "app/replay_run.h"
#include "app/simulation.h"
#include "core/city.h"
#include "core/time_util.h"
#include "ingest/broker.h"
#include "ingest/offset_query.h"
#include "replay/kafka_recorder.h"
#include "replay/replay_log.h"
#include "replay/run_output.h"
#include "storage/store.h"
#include "tests/support/test_support.h"

namespace cityloop {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

std::string GoldenLog() { return testing::ProjectRoot() + "/tests/data/replay/golden"; }

std::shared_ptr<const CityModel> LoadCityFrom(const std::string& path) {
  ConfigLoadResult loaded = LoadConfigFile(path);
  EXPECT_TRUE(loaded.config) << (loaded.errors.empty() ? "" : loaded.errors[0].ToString());
  if (!loaded.config) return nullptr;
  auto built = CityModel::Build(*loaded.config);
  EXPECT_TRUE(built.ok()) << built.status().ToString();
  return built.ok() ? *built : nullptr;
}

// The three outputs that must not depend on how a log was replayed.
struct Outputs {
  std::string cases, kpi, digest;
  bool operator==(const Outputs&) const = default;
};

Outputs ReadOutputs(const std::string& dir) {
  return {testing::ReadFile(dir + "/cases.jsonl"), testing::ReadFile(dir + "/kpi.json"),
          fs::exists(dir + "/digest") ? testing::ReadFile(dir + "/digest") : ""};
}

class Replay : public ::testing::Test {
 protected:
  void SetUp() override {
    city = LoadCityFrom(testing::ExampleConfigPath());
    ASSERT_TRUE(city);
  }

  // Replays log into a fresh out dir named `name`.
  app::ReplaySummary Run(const std::string& log, const std::string& name, size_t batch = 1000, double speed = 0) {
    app::ReplayOptions o;
    o.log_dir = log;
    o.out_dir = dir.file(name);
    o.batch_size = batch;
    o.speed = speed;
    o.progress = app::ReplayOptions::Progress::kNone;
    MetricsRegistry metrics;
    auto s = app::RunReplay(city, o, &metrics);
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    return s.ok() ? *s : app::ReplaySummary{};
  }

  // Simulates `minutes` of the example city (seeded) into the broker as a backlog.
  void Simulate(const std::string& bootstrap, uint64_t seed, const std::string& start, int minutes,
                bool with_incidents = true) {
    app::SimulationRun run;
    run.bootstrap = bootstrap;
    run.paced = false;
    run.sim.seed = seed;
    run.sim.start_ms = *ParseRfc3339Ms(start);
    run.sim.duration_ms = int64_t{minutes} * 60000;
    run.sim.rate = 10;
    run.sim.incident_every_ms = 2 * 60000;
    ManualClock clock(run.sim.start_ms + run.sim.duration_ms);
    std::atomic<bool> stop{false};
    auto sim = app::RunSimulation(city, run, clock, stop);
    ASSERT_TRUE(sim.ok()) << sim.status().ToString();
    if (with_incidents) {
      ASSERT_GT(sim->incidents, 0);
    }
  }

  // Records every input topic of the broker, to its current end, into log.
  uint64_t Record(const std::string& bootstrap, const std::string& log) {
    replay::KafkaRange range;
    range.bootstrap = bootstrap;
    const auto& t = city->config().kafka.topics;
    range.topics = {t.sensors, t.camera_frames, t.camera_detections, t.reports, t.units, t.commands};
    range.until_caught_up = true;
    auto w = replay::LogWriter::Open(log);
    EXPECT_TRUE(w.ok()) << w.status().ToString();
    auto stats = replay::RecordFromKafka(range, w->get(), nullptr);
    EXPECT_TRUE(stats.ok()) << stats.status().ToString();
    EXPECT_TRUE((*w)->Close().ok());
    return stats.ok() ? stats->records : 0;
  }

  testing::TempDir dir;
  std::shared_ptr<const CityModel> city;
};

// The committed log replays to its committed digest. A change that is meant
// to alter the engine's output regenerates both with
// tests/data/replay/make-golden.sh.
TEST_F(Replay, GoldenLogGivesItsDigest) {
  const auto s = Run(GoldenLog(), "golden");
  std::string expected = testing::ReadFile(testing::ProjectRoot() + "/tests/data/replay/golden.digest");
  expected.erase(expected.find_last_not_of('\n') + 1);
  EXPECT_EQ(s.digest, expected) << "the engine's output for the golden log changed; if that is intended, run "
                                   "tests/data/replay/make-golden.sh build/bin/cityloop";
  EXPECT_EQ(s.events_in, 9078u);
  EXPECT_EQ(s.output.cases, 5u);
  EXPECT_TRUE(s.problems.empty());
  EXPECT_EQ(s.order, "time");
  const std::string cases = testing::ReadFile(dir.file("golden") + "/cases.jsonl");
  // Every case line carries its timeline, and no Kafka coordinates.
  EXPECT_NE(cases.find("\"timeline\":[{"), std::string::npos);
  EXPECT_EQ(cases.find("input_offset"), std::string::npos);
  const json kpi = json::parse(testing::ReadFile(dir.file("golden") + "/kpi.json"));
  EXPECT_EQ(kpi["by"]["total"]["rows"][0]["counts"]["accepted"], 5);
}

TEST_F(Replay, AnySpeedAndBatchSizeGiveByteIdenticalOutput) {
  const auto a = Run(GoldenLog(), "a", 1000);
  const auto b = Run(GoldenLog(), "b", 1);
  const auto c = Run(GoldenLog(), "c", 37, /*speed=*/3000);  // 15 min of log in ~0.3 s
  EXPECT_FALSE(a.digest.empty());
  EXPECT_EQ(a.digest, b.digest);
  EXPECT_EQ(a.digest, c.digest);
  const Outputs oa = ReadOutputs(dir.file("a"));
  EXPECT_FALSE(oa.cases.empty());
  EXPECT_EQ(oa, ReadOutputs(dir.file("b")));
  EXPECT_EQ(oa, ReadOutputs(dir.file("c")));
}

// The same seeded city produced into topics of 1 and of 3 partitions,
// recorded from each: replays agree byte for byte.
TEST_F(Replay, AnyNumberOfPartitionsGivesTheSameOutput) {
  std::vector<Outputs> outputs;
  std::vector<uint64_t> recorded;
  for (int partitions : {1, 3}) {
    KafkaOptions kafka = city->config().kafka;
    kafka.partitions = partitions;
    auto broker = ingest::EmbeddedBroker::Start(ingest::BrokerOptionsFor(kafka));
    ASSERT_TRUE(broker.ok()) << broker.status().ToString();
    Simulate((*broker)->bootstrap(), 5, "2026-11-28T10:00:00+08:00", 20);
    const std::string log = dir.file("log" + std::to_string(partitions));
    recorded.push_back(Record((*broker)->bootstrap(), log));
    Run(log, "out" + std::to_string(partitions));
    outputs.push_back(ReadOutputs(dir.file("out" + std::to_string(partitions))));
    auto reader = replay::LogReader::Open(log);
    ASSERT_TRUE(reader.ok());
    EXPECT_EQ((*reader)->info().streams.size() % static_cast<size_t>(partitions), 0u);
  }
  EXPECT_EQ(recorded[0], recorded[1]);
  EXPECT_GT(recorded[0], 1000u);
  EXPECT_NE(outputs[0].cases, "");
  EXPECT_EQ(outputs[0], outputs[1]);
}

// The engine records what it applies (run --record) while its clock moves on
// by itself between inputs; the replay of that recording rebuilds the live
// store's cases, timelines and KPIs exactly.
TEST_F(Replay, ALiveRunRecordedAndReplayedGivesTheSameCases) {
  auto broker = ingest::EmbeddedBroker::Start(ingest::BrokerOptionsFor(city->config().kafka));
  ASSERT_TRUE(broker.ok()) << broker.status().ToString();
  const std::string bootstrap = (*broker)->bootstrap();
  const std::string start = "2026-11-28T14:00:00+08:00";
  Simulate(bootstrap, 9, start, 15);

  // Everything in the input topics now, by their ends.
  auto ends = ingest::OffsetQuery::Create(bootstrap);
  ASSERT_TRUE(ends.ok());
  auto produced = [&] {
    int64_t total = 0;
    const auto& t = city->config().kafka.topics;
    for (const std::string& topic : {t.sensors, t.camera_frames, t.camera_detections, t.reports, t.units, t.commands}) {
      auto high = (*ends)->HighWatermarks(topic);
      EXPECT_TRUE(high.ok()) << high.status().ToString();
      if (high.ok()) for (const auto& [p, h] : *high) total += h;
    }
    return total;
  };
  MetricsRegistry metrics;
  auto consumed = [&](int64_t n) {
    return testing::WaitFor([&] { return metrics.CounterTotal("cityloop_ingest_messages_total") >= n; });
  };

  ManualClock clock(*ParseRfc3339Ms(start) + 15 * 60000);
  app::EngineOptions eo;
  eo.bootstrap = bootstrap;
  eo.store_path = dir.file("live-store");
  eo.record_dir = dir.file("live-log");
  auto engine = app::Engine::Create(city, eo, clock, &metrics);
  ASSERT_TRUE(engine.ok()) << engine.status().ToString();
  std::atomic<bool> stop{false};
  Status result;
  std::thread loop([&] { result = (*engine)->Run(stop); });
  const int64_t backlog = produced();
  ASSERT_TRUE(consumed(backlog));
  // Every batch recorded (the clock has not moved: no clock records yet), so
  // from here on only clock advances add records.
  ASSERT_TRUE(testing::WaitFor([&] { return metrics.CounterTotal("cityloop_recorded_records_total") == backlog; }));
  // The input goes quiet and event time moves on with the clock (silent
  // devices, SLA lights): only the recorded clock advances can reproduce it.
  for (int minute = 1; minute <= 40; ++minute) {
    const int64_t recorded = metrics.CounterTotal("cityloop_recorded_records_total");
    clock.advance_ms(60000);
    // Past the idle timeout, every advance moves event time: one clock record.
    ASSERT_TRUE(testing::WaitFor([&] { return metrics.CounterTotal("cityloop_recorded_records_total") > recorded; }))
        << "minute " << minute;
  }
  // More input after the quiet spell.
  Simulate(bootstrap, 10, "2026-11-28T14:55:00+08:00", 5, /*with_incidents=*/false);
  const int64_t total = produced();
  ASSERT_GT(total, backlog);
  ASSERT_TRUE(consumed(total));
  stop = true;  // the step in progress, its recording included, completes first
  loop.join();
  ASSERT_TRUE(result.ok()) << result.ToString();
  const int64_t sla_lights = metrics.CounterTotal("cityloop_sla_warnings_total");
  engine->reset();

  const auto replayed = Run(dir.file("live-log"), "replayed");
  EXPECT_EQ(replayed.order, "log");
  EXPECT_EQ(replayed.writer, "engine");
  EXPECT_EQ(replayed.events_in, static_cast<uint64_t>(total));
  EXPECT_GE(replayed.clock_advances, 40u);
  EXPECT_TRUE(replayed.problems.empty());
  EXPECT_GT(sla_lights, 0) << "the quiet spell should light SLA clocks, or the test proves little";

  auto store = storage::Store::Open(dir.file("live-store"));
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  ASSERT_TRUE(replay::WriteRunOutput(**store, city->config(), dir.file("live")).ok());
  const Outputs live = ReadOutputs(dir.file("live"));
  Outputs again = ReadOutputs(dir.file("replayed"));
  again.digest.clear();  // a live run has no digest of its own
  EXPECT_GT(std::count(live.cases.begin(), live.cases.end(), '\n'), 3);
  EXPECT_EQ(live, again);
}

TEST_F(Replay, DamageIsReportedAndTheRestReplays) {
  const std::string log = dir.file("damaged");
  fs::copy(GoldenLog(), log, fs::copy_options::recursive);
  const std::string sensors = log + "/city.sensors/1/00000000.seg";
  const std::string units = log + "/city.units/0/00000000.seg";
  {
    std::fstream f(sensors, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(fs::file_size(sensors) / 2));
    f.put('\x7f');
  }
  fs::resize_file(units, fs::file_size(units) - 5);
  std::string out;
  const int rc = testing::RunCommand({testing::CityloopBinary(), "replay", "--config", testing::ExampleConfigPath(),
                                      "--log", log, "--out", dir.file("damaged-out"), "--progress", "none"},
                                     &out);
  ASSERT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("2 damaged stretches of the log skipped"), std::string::npos) << out;
  EXPECT_NE(out.find(sensors + " at byte "), std::string::npos) << out;
  EXPECT_NE(out.find("torn tail"), std::string::npos) << out;
  const json summary = json::parse(testing::ReadFile(dir.file("damaged-out") + "/summary.json"));
  EXPECT_EQ(summary["events_in"], 9078 - 2);
  EXPECT_EQ(summary["problems"].size(), 2u);
}

// What would a rule change have done: a silent-device rule made far less
// eager, and smoke alarms no longer urgent. diff names exactly that.
TEST_F(Replay, AWhatIfPairOfConfigsGivesTheExpectedDiff) {
  std::string yaml = testing::ReadFile(testing::ExampleConfigPath());
  auto replace = [&](const std::string& from, const std::string& to) {
    const size_t at = yaml.find(from);
    ASSERT_NE(at, std::string::npos) << from;
    yaml.replace(at, from.size(), to);
  };
  replace("    factor: 5\n", "    factor: 500\n");
  replace("for: 30s, priority: urgent}", "for: 30s, priority: high}");  // rule smoke-fire
  const std::string what_if = dir.file("what-if.yaml");
  testing::WriteFile(what_if, yaml);

  const std::string bin = testing::CityloopBinary();
  std::string out;
  for (auto [config, name] : {std::pair{testing::ExampleConfigPath(), "now"}, std::pair{what_if, "what-if"},
                              std::pair{testing::ExampleConfigPath(), "again"}}) {
    ASSERT_EQ(testing::RunCommand({bin, "replay", "--config", config, "--log", GoldenLog(), "--out", dir.file(name),
                                   "--progress", "none"},
                                  &out),
              0)
        << out;
  }
  EXPECT_EQ(testing::RunCommand({bin, "diff", dir.file("now"), dir.file("again")}, &out), 0) << out;
  EXPECT_NE(out.find("runs match"), std::string::npos) << out;

  ASSERT_EQ(testing::RunCommand({bin, "diff", dir.file("now"), dir.file("what-if"), "--json", dir.file("diff.json")}, &out),
            1)
      << out;
  const json diff = json::parse(testing::ReadFile(dir.file("diff.json")));
  EXPECT_FALSE(diff["match"].get<bool>());
  // The three silent-device cases are gone; both fire cases are still there, at another priority.
  ASSERT_EQ(diff["cases"]["only_in_a"].size(), 3u) << diff.dump(2);
  for (const auto& c : diff["cases"]["only_in_a"]) EXPECT_EQ(c["category"], "device_silent");
  EXPECT_TRUE(diff["cases"]["only_in_b"].empty());
  ASSERT_EQ(diff["cases"]["changed"].size(), 2u) << diff.dump(2);
  for (const auto& c : diff["cases"]["changed"]) {
    bool priority = false;
    for (const auto& ch : c["changes"]) {
      if (ch["field"] == "priority") priority = ch["a"] == "urgent" && ch["b"] == "high";
    }
    EXPECT_TRUE(priority) << c.dump();
  }
  // KPIs: city management accepted three cases fewer.
  bool city_management = false;
  for (const auto& row : diff["kpi"]["department"]) {
    if (row["group"] != "city_management") continue;
    city_management = true;
    EXPECT_EQ(row["counts"]["accepted"]["delta"], -3);
  }
  EXPECT_TRUE(city_management) << diff["kpi"].dump(2);
  EXPECT_NE(out.find("Only in A:"), std::string::npos) << out;
  EXPECT_NE(out.find("priority urgent → high"), std::string::npos) << out;
}

// Replay from Kafka: a range from a time (the embedded broker cannot look
// offsets up by time: found by a scan) equals the recorded log replayed from
// that time; a range from offsets starts where it says.
TEST_F(Replay, FromKafkaByTimeAndByOffsets) {
  auto broker = ingest::EmbeddedBroker::Start(ingest::BrokerOptionsFor(city->config().kafka));
  ASSERT_TRUE(broker.ok()) << broker.status().ToString();
  const std::string bootstrap = (*broker)->bootstrap();
  Simulate(bootstrap, 5, "2026-11-28T10:00:00+08:00", 20);
  const std::string bin = testing::CityloopBinary();
  const std::string config = testing::ExampleConfigPath();
  const std::string from = "2026-11-28T10:08:00+08:00";
  std::string out;
  ASSERT_EQ(testing::RunCommand({bin, "record", "--config", config, "--bootstrap", bootstrap, "--out", dir.file("all"),
                                 "--until-caught-up"},
                                &out),
            0)
      << out;
  ASSERT_EQ(testing::RunCommand({bin, "replay", "--config", config, "--log", dir.file("all"), "--from", from, "--out",
                                 dir.file("from-log"), "--progress", "none"},
                                &out),
            0)
      << out;
  ASSERT_EQ(testing::RunCommand({bin, "replay", "--config", config, "--bootstrap", bootstrap, "--from-time", from,
                                 "--out", dir.file("from-kafka"), "--progress", "none"},
                                &out),
            0)
      << out;
  const json by_log = json::parse(testing::ReadFile(dir.file("from-log") + "/summary.json"));
  const json by_kafka = json::parse(testing::ReadFile(dir.file("from-kafka") + "/summary.json"));
  EXPECT_GT(by_kafka["events_in"].get<int64_t>(), 1000);
  EXPECT_EQ(by_kafka["events_in"], by_log["events_in"]);
  EXPECT_EQ(by_kafka["digest"], by_log["digest"]);
  EXPECT_EQ(ReadOutputs(dir.file("from-kafka")), ReadOutputs(dir.file("from-log")));

  const std::string sensors = city->config().kafka.topics.sensors;
  ASSERT_EQ(testing::RunCommand({bin, "replay", "--config", config, "--bootstrap", bootstrap, "--topics", sensors,
                                 "--from-offsets", sensors + ":0=100," + sensors + ":1=0", "--to-time",
                                 "2026-11-28T10:30:00+08:00", "--out", dir.file("from-offsets"), "--progress", "none"},
                                &out),
            0)
      << out;
  // Partition 0 from offset 100, the others from their beginning.
  auto reader = replay::LogReader::Open(dir.file("from-offsets") + "/log");
  ASSERT_TRUE(reader.ok());
  int64_t first_of_p0 = -1;
  uint64_t n = 0;
  while (replay::LogRecord* r = (*reader)->Next()) {
    ++n;
    if (r->message.partition == 0 && first_of_p0 < 0) first_of_p0 = r->message.offset;
  }
  EXPECT_EQ(first_of_p0, 100);
  replay::LogReadOptions only_sensors;
  only_sensors.topics = {sensors};
  auto all = replay::LogReader::Open(dir.file("all"), only_sensors);
  ASSERT_TRUE(all.ok());
  uint64_t sensors_total = 0;
  while ((*all)->Next()) ++sensors_total;
  EXPECT_EQ(n, sensors_total - 100);
}

}  // namespace
}  // namespace cityloop
