// Faults, end to end (docs/RELIABILITY.md): the broker in its own process
// (`cityloop broker --control`), the engine as a child `cityloop run` on one
// store, the input sensor readings of the example city produced fast by the
// test. Each test prints its figures on one line starting "RELIABILITY:".
//   - kill -9 at ten random points (seeded; the seed is printed): nothing
//     lost or doubled, the outputs equal the replay oracle, time to ready;
//   - SIGTERM under load: a prompt clean exit with the outbox drained; the
//     restart finishes the backlog exactly once;
//   - the broker down: /readyz goes 503 and back to 200, nothing lost, the
//     catch-up time;
//   - produce errors on the output topics (retriable and not): every output
//     delivered, repeats only as the same event;
//   - a torn RocksDB WAL tail after kill -9: the store opens, consistent with
//     its offsets, and the engine catches up from Kafka;
//   - one poison message among 10,000: one dead letter with its reason, no
//     retry loop.
// Short versions run in `make test` (the kill -9 and SIGTERM tests with the
// full 100,000 events). CITYLOOP_SOAK_MINUTES=N (`make soak`) runs the long
// versions (a 30 s outage, more produce errors, a bigger torn-WAL input) and
// the soak: N minutes of steady input with periodic kill -9, reporting RSS,
// open fds, store size, lag, lost and doubled.
//
// The config has one partition per topic and an idle timeout of an hour:
// then the live engine applies the input in the same order as the replay of
// it, and its event time moves only with the input, so a killed run and its
// replay must give the same output events (ingest times aside). The soak has
// 16 partitions and paced input (CITYLOOP_FAULT_PARTITIONS=N gives any test
// N, but the fast input of the others then reaches the run in partition-sized
// chunks, which no replay order reproduces): its events must be the same up
// to the case events' sequence numbers (testing::OracleMatch::kUpToInterleaving).
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <random>
#include <sstream>
#include <thread>

#include "core/clock.h"
#include "core/time_util.h"
#include "ingest/offset_query.h"
#include "storage/store.h"
#include "tests/support/crash_harness.h"
#include "tests/support/pipeline_support.h"
#include "tests/support/test_support.h"

namespace cityloop {
namespace {

using nlohmann::json;
using testing::EngineProcess;
using testing::SteadyMs;

// CITYLOOP_SOAK_MINUTES: 0 (unset) runs the short versions.
int SoakMinutes() {
  const char* v = std::getenv("CITYLOOP_SOAK_MINUTES");
  return v && *v ? std::max(0, std::atoi(v)) : 0;
}
bool Long() { return SoakMinutes() > 0; }

int64_t NowMs() { return SystemClock::instance().now_ms(); }

// One line of figures, collected by docs/RELIABILITY.md.
void Report(const std::string& figures) { std::cout << "RELIABILITY: " << figures << std::endl; }

std::string Join(const std::vector<int64_t>& v) {
  std::string out;
  for (size_t i = 0; i < v.size(); ++i) out += (i ? "," : "") + std::to_string(v[i]);
  return out;
}

class Fault : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string name = ::testing::UnitTest::GetInstance()->current_test_info()->name();
    if (name.rfind("Soak", 0) == 0 && SoakMinutes() == 0) {
      GTEST_SKIP() << "set CITYLOOP_SOAK_MINUTES (make soak) to run the soak";
    }
    auto edits = testing::CrashConfigEdits(150, /*session_ms=*/4000);
    // The soak's input outgrows what the embedded broker keeps of one partition (5 MiB, then it
    // drops the oldest, which the replay oracle would then not see): spread it.
    const bool soak = name.rfind("Soak", 0) == 0;
    partitions_ = soak ? 16 : 1;
    if (const char* p = std::getenv("CITYLOOP_FAULT_PARTITIONS"); p && *p) partitions_ = std::max(1, std::atoi(p));
    edits.push_back({"partitions: 4 ", "partitions: " + std::to_string(partitions_) + " "});
    edits.push_back({"idle_timeout: 10s", "idle_timeout: 1h"});
    config_ = dir_.file("cityloop.yaml");
    testing::WriteFile(config_, testing::EditedExampleConfig(edits));
    city_ = testing::LoadTestCity(config_);
    ASSERT_TRUE(city_);
    broker_ = std::make_unique<testing::BrokerProcess>(dir_, config_);
    ASSERT_TRUE(broker_->started());
    bootstrap_ = broker_->bootstrap();
    store_ = dir_.file("store");
  }

  // n sensor readings of the example city from `start_ms` on (an incident
  // every 90 s of city time on average), produced as fast as Kafka takes them.
  // skip: the first readings of the simulation are left out (a later part of it).
  int64_t Produce(
      int64_t n, int64_t start_ms, uint64_t seed = 7,
      std::function<void(int64_t, const ingest::SimulatedReading&, ingest::KafkaProducer&)> between = nullptr,
      int64_t skip = 0) {
    testing::ProduceOptions o;
    o.skip = skip;
    o.sim.seed = seed;
    o.sim.start_ms = start_ms;
    o.sim.rate = 20;
    o.sim.duration_ms = (n + skip) * 1000 / 15;  // ample: the limit ends it
    o.sim.incident_every_ms = 90000;
    o.limit = n;
    o.between = std::move(between);
    return testing::ProduceSensorReadings(bootstrap_, city_, o);
  }

  std::unique_ptr<EngineProcess> Engine(std::vector<std::string> extra = {}, std::vector<std::string> env = {}) {
    return std::make_unique<EngineProcess>(config_, bootstrap_, store_, dir_.file("engine.log"), extra, env);
  }
  std::unique_ptr<EngineProcess> EngineToTheEnd() { return Engine({"--exit-when-caught-up"}); }

  // Waits until this engine applied n inputs and its outbox is empty.
  bool WaitApplied(EngineProcess& e, int64_t n, std::chrono::milliseconds deadline = std::chrono::seconds(120)) {
    return testing::WaitFor(
               [&] {
                 return !e.child().Running() || (e.Metric("cityloop_ingest_messages_total") >= static_cast<double>(n) &&
                                                 e.Metric("cityloop_outbox_pending") == 0);
               },
               deadline) &&
           e.child().Running();
  }

  // Lost / doubled as the checks count them: inputs not applied, outputs the
  // oracle has and the run not; inputs or signals twice, outputs the run has
  // and the oracle not, ids repeated with other content.
  struct Verdict {
    int64_t lost = 0, doubled = 0;
    int64_t repeats = 0;
    bool digest_equal = false;
    size_t cases = 0;
  };
  Verdict Judge(const testing::ExactlyOnce& r, const testing::OracleComparison* o) {
    Verdict v;
    v.lost = r.unapplied + r.missing_subjects + (o ? static_cast<int64_t>(o->missing) : 0);
    v.doubled = r.inputs_twice + r.signals_twice + r.conflicts + r.beyond_end + r.unexpected_subjects +
                (o ? static_cast<int64_t>(o->extra) : 0);
    v.repeats = r.repeats;
    v.digest_equal = o && o->ran && o->digest == o->oracle_digest;
    v.cases = r.cases.size();
    return v;
  }
  // The exactly-once checks, and the oracle's: same output events, same cases.
  // require_cases: fail when the input opened no case (it would prove little).
  Verdict CheckAgainstOracle(const std::string& tag, bool require_cases = true) {
    const testing::ExactlyOnce run = testing::CheckRun(bootstrap_, store_, {city_->config().kafka.topics.sensors});
    testing::ExpectExactlyOnce(run);
    // The replay reads the input from offset 0: it must all be there still.
    auto query = ingest::OffsetQuery::Create(bootstrap_);
    EXPECT_TRUE(query.ok());
    if (query.ok()) {
      auto lows = (*query)->LowWatermarks(city_->config().kafka.topics.sensors);
      EXPECT_TRUE(lows.ok());
      for (const auto& [partition, low] : lows.ok() ? *lows : std::map<int32_t, int64_t>{}) {
        EXPECT_EQ(low, 0) << "partition " << partition << ": the embedded broker dropped the oldest input, "
                          << "so the replay cannot see it (more partitions or less input)";
      }
    }
    // Several partitions: the replay interleaves them otherwise than the run did.
    const testing::OracleComparison o =
        testing::CompareWithReplay(dir_, config_, bootstrap_, store_, tag,
                                   partitions_ > 1 ? testing::OracleMatch::kUpToInterleaving
                                                   : testing::OracleMatch::kExact);
    EXPECT_TRUE(o.ran);
    EXPECT_EQ(o.missing, 0u) << o.first_difference;
    EXPECT_EQ(o.extra, 0u) << o.first_difference;
    EXPECT_EQ(o.digest, o.oracle_digest);
    EXPECT_TRUE(o.cases_equal) << o.first_difference;
    if (require_cases) {
      EXPECT_GT(o.cases, 0u) << "no case: the input proves little";
    }
    return Judge(run, &o);
  }

  testing::TempDir dir_;
  int partitions_ = 1;  // of each topic
  std::string config_, bootstrap_, store_;
  std::shared_ptr<const CityModel> city_;
  std::unique_ptr<testing::BrokerProcess> broker_;
};

// ------------------------------------------------------------------ kill -9

TEST_F(Fault, KilledAtTenRandomPointsMatchesTheReplay) {
  const int64_t events = 100000;  // in make test too: producing and replaying them takes seconds
  uint64_t seed = std::random_device{}();
  if (const char* s = std::getenv("CITYLOOP_FAULT_SEED"); s && *s) seed = std::strtoull(s, nullptr, 10);
  std::cout << "kill points seed " << seed << " (CITYLOOP_FAULT_SEED=" << seed << " repeats them)" << std::endl;
  std::mt19937_64 rng(seed);
  const int64_t t0 = SteadyMs();
  ASSERT_EQ(Produce(events, NowMs() - 12 * 3600000), events);

  // A named point of the loop after a random number of hits (batches of 150
  // messages, acknowledgements, commits), or a kill from outside a random
  // time after /readyz said ready. A point not reached once the engine has
  // read a tenth of what is left (acknowledgements and commits depend on
  // timing) gets the kill from outside then.
  const char* const kPoints[] = {"after_poll", "before_write", "after_write", "after_publish", "after_commit"};
  std::vector<int64_t> ready_ms;
  std::vector<std::string> kills;
  int64_t previous = 0;
  for (int k = 0; k < 10; ++k) {
    const int64_t remaining = events - previous;
    ASSERT_GT(remaining, 0) << "the input ran out before kill " << k;
    // At most about a tenth of what is left per kill, so all ten happen mid-stream.
    const int64_t budget = std::max<int64_t>(1, remaining / 10);
    std::string spec;
    int64_t delay_ms = -1;
    if (rng() % 2 == 0) {
      const size_t which = rng() % 5;
      const int64_t most = which < 3 ? std::max<int64_t>(1, budget / 150) : 3;
      spec = std::string(kPoints[which]) + ":" +
             std::to_string(1 + static_cast<int64_t>(rng() % static_cast<uint64_t>(most)));
    } else {
      // The engine reads some 40 inputs a millisecond catching up: stay within the budget.
      delay_ms = static_cast<int64_t>(rng() % static_cast<uint64_t>(std::clamp<int64_t>(budget / 40, 1, 150)));
    }
    auto engine = spec.empty() ? Engine() : Engine({}, {"CITYLOOP_FAULT_POINT=" + spec});
    const int64_t ready = engine->WaitReady();
    if (ready >= 0) ready_ms.push_back(ready);
    if (delay_ms >= 0) {
      ASSERT_GE(ready, 0) << engine->log();
      std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));  // the kill's random moment
      engine->child().Kill(SIGKILL);
      spec = std::to_string(delay_ms) + " ms after ready";
    } else {
      engine->WaitMetricAtLeast("cityloop_ingest_messages_total", static_cast<double>(budget));
      if (engine->child().Running()) {
        engine->child().Kill(SIGKILL);
        spec += " not reached, killed after " + std::to_string(budget) + " inputs";
      }
    }
    const int rc = engine->child().Wait(std::chrono::seconds(60));
    ASSERT_EQ(rc, 128 + SIGKILL) << spec << ": not killed (exit " << rc << ")\n" << engine->log();
    const int64_t stored = testing::StoredOffsetTotal(store_);
    EXPECT_GE(stored, previous) << "stored offsets went back after " << spec;
    kills.push_back(spec + " (stored " + std::to_string(stored) + ")");
    previous = stored;
  }
  auto last = EngineToTheEnd();
  const int64_t ready = last->WaitReady();
  if (ready >= 0) ready_ms.push_back(ready);
  ASSERT_EQ(last->child().Wait(std::chrono::seconds(180)), 0) << last->log();
  const Verdict v = CheckAgainstOracle("kill9");
  EXPECT_EQ(v.lost, 0);
  EXPECT_EQ(v.doubled, 0);
  std::string where;
  for (const auto& k : kills) where += (where.empty() ? "" : "; ") + k;
  std::cout << "kills: " << where << std::endl;
  Report("kill9 seed=" + std::to_string(seed) + " events=" + std::to_string(events) + " kills=" +
         std::to_string(kills.size()) + " lost=" + std::to_string(v.lost) + " doubled=" + std::to_string(v.doubled) +
         " output_repeats=" + std::to_string(v.repeats) + " cases=" + std::to_string(v.cases) +
         " digest_equal=" + std::to_string(v.digest_equal) + " ready_ms=" + Join(ready_ms) + " ready_max_ms=" +
         std::to_string(ready_ms.empty() ? -1 : *std::max_element(ready_ms.begin(), ready_ms.end())) +
         " total_s=" + std::to_string((SteadyMs() - t0) / 1000));
}

// ------------------------------------------------------------------ SIGTERM

TEST_F(Fault, SigtermUnderLoadDrainsTheOutboxAndExitsPromptly) {
  const int64_t events = 100000;
  ASSERT_EQ(Produce(events, NowMs() - 12 * 3600000, 9), events);
  auto engine = Engine();
  ASSERT_GE(engine->WaitReady(), 0) << engine->log();
  ASSERT_TRUE(engine->WaitMetricAtLeast("cityloop_ingest_messages_total", events / 5.0)) << engine->log();
  const int64_t term_at = SteadyMs();
  engine->child().Kill(SIGTERM);
  const int rc = engine->child().Wait(std::chrono::seconds(30));
  const int64_t shutdown_ms = SteadyMs() - term_at;
  ASSERT_EQ(rc, 0) << engine->log();
  // The outbox publisher drains for at most 10 s; the batch in hand is short.
  EXPECT_LT(shutdown_ms, 12000);
  int64_t outbox_left = 0, stored = 0;
  {
    auto store = storage::Store::Open(store_);
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    ASSERT_TRUE((*store)
                    ->ForEachOutbox([&](const storage::OutboxRecord&) {
                      ++outbox_left;
                      return true;
                    })
                    .ok());
    for (const auto& [tp, next] : (*store)->AllOffsets()) stored += next;
  }
  EXPECT_EQ(outbox_left, 0) << "SIGTERM left outbox records undelivered";
  EXPECT_GT(stored, 0);
  EXPECT_LT(stored, events) << "the backlog was over before SIGTERM: the test proves little";
  auto rest = EngineToTheEnd();
  ASSERT_EQ(rest->child().Wait(std::chrono::seconds(180)), 0) << rest->log();
  const Verdict v = CheckAgainstOracle("sigterm");
  Report("sigterm events=" + std::to_string(events) + " applied_at_stop=" + std::to_string(stored) +
         " shutdown_ms=" + std::to_string(shutdown_ms) + " outbox_left_at_stop=" + std::to_string(outbox_left) +
         " lost=" + std::to_string(v.lost) + " doubled=" + std::to_string(v.doubled) +
         " digest_equal=" + std::to_string(v.digest_equal));
}

// ------------------------------------------------------------------ broker down

TEST_F(Fault, BrokerDownMakesTheEngineNotReadyUntilItIsBack) {
  const int64_t first = 5000, second = Long() ? 20000 : 5000;
  const int64_t start = NowMs() - 12 * 3600000;
  ASSERT_EQ(Produce(first, start, 5), first);
  auto engine = Engine();
  ASSERT_GE(engine->WaitReady(), 0) << engine->log();
  ASSERT_TRUE(WaitApplied(*engine, first)) << engine->log();

  ASSERT_EQ(broker_->Control("down 1"), "");
  const int64_t down_at = SteadyMs();
  // The input goes on meanwhile: the producer keeps it until the broker is back.
  int64_t produced = -1;
  std::thread producer([&] { produced = Produce(second, start, 5, nullptr, /*skip=*/first); });
  const bool went_unready = testing::WaitFor([&] { return engine->Get("/readyz").status == 503; });
  const int64_t unready_ms = SteadyMs() - down_at;
  EXPECT_TRUE(went_unready) << "/readyz stayed ready with the broker down";
  // The outage: until /readyz said so plus a few seconds (at least 6 s, so
  // the engine's 5-second gauge refresh falls into it), or 30 s under soak.
  // Meanwhile the engine loop must keep turning (its poll count growing):
  // blocked on the cluster it would miss the systemd watchdog and SIGTERM.
  const int64_t outage_ms = Long() ? 30000 : std::max<int64_t>(unready_ms + 5000, 6000);
  double polls = engine->Metric("cityloop_poll_ms_count");
  int64_t polls_moved_at = SteadyMs(), stall_ms = 0;
  while (SteadyMs() - down_at < outage_ms) {
    EXPECT_NE(engine->Get("/readyz").status, 200) << "ready while the broker is down";
    const double now_polls = engine->Metric("cityloop_poll_ms_count");
    if (now_polls > polls) {
      polls = now_polls;
      polls_moved_at = SteadyMs();
    }
    stall_ms = std::max(stall_ms, SteadyMs() - polls_moved_at);
    std::this_thread::sleep_for(std::chrono::milliseconds(100));  // the outage's duration
  }
  EXPECT_LT(stall_ms, 2500) << "the engine loop stood still while the broker was down";
  EXPECT_EQ(engine->Get("/livez").status, 200) << "not live while the broker is down";
  ASSERT_EQ(broker_->Control("up 1"), "");
  const int64_t up_at = SteadyMs();
  EXPECT_TRUE(testing::WaitFor([&] { return engine->Get("/readyz").status == 200; })) << engine->log();
  const int64_t ready_again_ms = SteadyMs() - up_at;
  producer.join();
  ASSERT_EQ(produced, second);
  ASSERT_TRUE(WaitApplied(*engine, first + second)) << engine->log();
  const int64_t caught_up_ms = SteadyMs() - up_at;
  engine->child().Kill(SIGTERM);
  ASSERT_EQ(engine->child().Wait(std::chrono::seconds(30)), 0) << engine->log();
  const testing::ExactlyOnce run = testing::CheckRun(bootstrap_, store_, {city_->config().kafka.topics.sensors});
  testing::ExpectExactlyOnce(run);
  EXPECT_EQ(run.inputs, first + second);
  const Verdict v = Judge(run, nullptr);
  Report("broker_down events=" + std::to_string(first + second) + " outage_ms=" + std::to_string(up_at - down_at) +
         " not_ready_after_ms=" + std::to_string(unready_ms) + " ready_after_up_ms=" + std::to_string(ready_again_ms) +
         " caught_up_after_up_ms=" + std::to_string(caught_up_ms) + " loop_stall_max_ms=" + std::to_string(stall_ms) +
         " lost=" + std::to_string(v.lost) + " doubled=" + std::to_string(v.doubled) +
         " output_repeats=" + std::to_string(v.repeats));
}

// ------------------------------------------------------------------ produce errors

TEST_F(Fault, ProduceErrorsOnTheOutputTopicsAreRetriedUntilDelivered) {
  const int64_t events = 10000;
  ASSERT_EQ(Produce(events, NowMs() - 12 * 3600000, 3), events);
  // The input is in: from here on the engine's outbox producer is the only
  // one producing. Retriable errors (librdkafka retries them itself) and
  // non-retriable ones (the delivery fails; the outbox publisher produces
  // the record again).
  const std::string errors = Long() ? "NOT_LEADER_FOR_PARTITION*20 REQUEST_TIMED_OUT*20 INVALID_RECORD*10 "
                                      "NOT_ENOUGH_REPLICAS*20 TOPIC_AUTHORIZATION_FAILED*5"
                                    : "NOT_LEADER_FOR_PARTITION*5 REQUEST_TIMED_OUT*3 INVALID_RECORD*3 "
                                      "NOT_ENOUGH_REPLICAS*5 TOPIC_AUTHORIZATION_FAILED*2";
  ASSERT_EQ(broker_->Control("errors Produce " + errors), "");
  auto engine = Engine();
  ASSERT_GE(engine->WaitReady(), 0) << engine->log();
  ASSERT_TRUE(WaitApplied(*engine, events)) << engine->log();
  const double redelivered = engine->Metric("cityloop_outbox_delivery_failures_total");
  const double published = engine->Metric("cityloop_outbox_published_total");
  engine->child().Kill(SIGTERM);
  ASSERT_EQ(engine->child().Wait(std::chrono::seconds(30)), 0) << engine->log();
  EXPECT_GT(redelivered, 0) << "no delivery failed: the injected errors missed the outbox";
  const Verdict v = CheckAgainstOracle("produce-errors");
  Report("produce_errors events=" + std::to_string(events) + " injected=\"" + errors +
         "\" published=" + std::to_string(static_cast<int64_t>(published)) +
         " failed_deliveries_retried=" + std::to_string(static_cast<int64_t>(redelivered)) +
         " lost=" + std::to_string(v.lost) + " doubled=" + std::to_string(v.doubled) +
         " output_repeats=" + std::to_string(v.repeats) + " digest_equal=" + std::to_string(v.digest_equal));
}

// ------------------------------------------------------------------ torn WAL

TEST_F(Fault, ATornWalTailAfterKillOpensConsistentAndCatchesUp) {
  const int64_t events = Long() ? 60000 : 20000;
  ASSERT_EQ(Produce(events, NowMs() - 12 * 3600000, 4), events);
  {
    auto engine = Engine({"--exit-when-caught-up"}, {"CITYLOOP_FAULT_POINT=after_write:40"});
    ASSERT_EQ(engine->child().Wait(std::chrono::seconds(120)), 128 + SIGKILL) << engine->log();
  }
  // What the WAL holds intact, from a copy (opening the store itself would
  // replay and rewrite its log).
  namespace fs = std::filesystem;
  fs::copy(store_, dir_.file("store-copy"), fs::copy_options::recursive);
  const int64_t reached = testing::StoredOffsetTotal(dir_.file("store-copy"));
  ASSERT_GT(reached, 0);
  // The newest WAL: cut off its last third and garble what is then its tail.
  std::string wal;
  for (const auto& e : fs::directory_iterator(store_)) {
    if (e.path().extension() == ".log" && fs::file_size(e.path()) > 0 &&
        (wal.empty() || e.path().filename().string() > fs::path(wal).filename().string())) {
      wal = e.path().string();
    }
  }
  ASSERT_FALSE(wal.empty()) << "no WAL in " << store_;
  const auto size = static_cast<int64_t>(fs::file_size(wal));
  const int64_t cut = size / 3;
  const int64_t garbled = std::min<int64_t>(512, (size - cut) / 2);
  ASSERT_EQ(truncate(wal.c_str(), size - cut), 0);
  {
    std::fstream f(wal, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(size - cut - garbled);
    f << std::string(static_cast<size_t>(garbled), '\xA5');
  }
  int64_t after_tear = -1;
  {
    auto store = storage::Store::Open(store_);
    ASSERT_TRUE(store.ok()) << "the store does not open after a torn WAL tail: " << store.status().ToString();
    after_tear = 0;
    for (const auto& [tp, next] : (*store)->AllOffsets()) after_tear += next;
  }
  EXPECT_LE(after_tear, reached);
  EXPECT_LT(after_tear, reached) << "the cut lost no batch: the test proves little";
  auto rest = EngineToTheEnd();
  ASSERT_EQ(rest->child().Wait(std::chrono::seconds(180)), 0) << rest->log();
  const Verdict v = CheckAgainstOracle("torn-wal");
  Report("torn_wal events=" + std::to_string(events) + " wal_bytes=" + std::to_string(size) +
         " cut_bytes=" + std::to_string(cut) + " garbled_bytes=" + std::to_string(garbled) +
         " applied_before=" + std::to_string(reached) + " applied_after_open=" + std::to_string(after_tear) +
         " rolled_back_inputs=" + std::to_string(reached - after_tear) + " lost=" + std::to_string(v.lost) +
         " doubled=" + std::to_string(v.doubled) + " digest_equal=" + std::to_string(v.digest_equal));
}

// ------------------------------------------------------------------ poison

TEST_F(Fault, OnePoisonMessageAmongTenThousandIsDeadLetteredOnce) {
  const int64_t readings = 9999;
  std::string poison;
  int64_t poison_offset = -1;
  // After the 5000th reading: a reading of the same device, well formed and
  // valid field by field, but two hours older than its partition's event
  // time. Only the rule set's event-time check, deep in processing, refuses it.
  auto between = [&](int64_t n, const ingest::SimulatedReading& last, ingest::KafkaProducer& p) {
    if (n != 5000) return;
    json j = json::parse(last.value);
    j["ts"] = last.ts_ms - 2 * 3600000;
    poison = j.dump();
    poison_offset = n;  // one partition: the next offset
    EXPECT_TRUE(p.Produce(last.topic, last.key, poison, {}, 0, -1, last.ts_ms).ok());
  };
  ASSERT_EQ(Produce(readings, NowMs() - 12 * 3600000, 8, between), readings);
  ASSERT_FALSE(poison.empty());
  auto engine = Engine();
  ASSERT_GE(engine->WaitReady(), 0) << engine->log();
  ASSERT_TRUE(WaitApplied(*engine, readings + 1)) << engine->log();
  // Every message read once: none polled again, nothing went round in a loop.
  const double read = engine->Metric("cityloop_ingest_messages_total");
  const double accepted = engine->Metric("cityloop_ingest_accepted_total");
  const double late = engine->Metric(R"(cityloop_ingest_rejected_total{reason="late_event",topic="city.sensors"})");
  const double polls = engine->Metric("cityloop_poll_ms_count");
  EXPECT_EQ(read, readings + 1);
  EXPECT_EQ(accepted, readings);
  EXPECT_EQ(late, 1);
  engine->child().Kill(SIGTERM);
  ASSERT_EQ(engine->child().Wait(std::chrono::seconds(30)), 0) << engine->log();
  EXPECT_EQ(engine->log().find("engine started", engine->log().find("engine started") + 1), std::string::npos)
      << "the engine started twice";
  const auto dlq = testing::ReadTopic(bootstrap_, city_->config().kafka.topics.dlq);
  ASSERT_EQ(dlq.size(), 1u);
  EXPECT_EQ(dlq[0].value, poison);
  const std::string* error = dlq[0].header("x-error");
  ASSERT_NE(error, nullptr);
  EXPECT_EQ(error->rfind("late_event: ", 0), 0u) << *error;
  const std::string* offset = dlq[0].header("x-source-offset");
  ASSERT_NE(offset, nullptr);
  EXPECT_EQ(*offset, std::to_string(poison_offset));
  const testing::ExactlyOnce run = testing::CheckRun(bootstrap_, store_, {city_->config().kafka.topics.sensors});
  testing::ExpectExactlyOnce(run);
  Report("poison messages=" + std::to_string(readings + 1) + " read=" + std::to_string(static_cast<int64_t>(read)) +
         " accepted=" + std::to_string(static_cast<int64_t>(accepted)) + " dlq=" + std::to_string(dlq.size()) +
         " reason=\"" + error->substr(0, error->find(':')) + "\" polls=" + std::to_string(static_cast<int64_t>(polls)) +
         " engine_starts=1");
}

// ------------------------------------------------------------------ soak

// A steady input for CITYLOOP_SOAK_MINUTES with a kill -9 every 1-3 minutes.
// Every few minutes and at the end: RSS, open fds, store size, lag, restarts.
// Fails on anything lost or doubled, or drift beyond the bounds below.
TEST_F(Fault, SoakSteadyInputWithPeriodicKills) {
  const int minutes = SoakMinutes();  // > 0: SetUp skips the soak otherwise
  const double rate = 40;  // readings per second
  std::mt19937_64 rng(42);
  std::atomic<bool> stop{false};
  int64_t produced = -1;
  std::thread producer([&] {
    testing::ProduceOptions o;
    o.sim.seed = 12;
    o.sim.start_ms = NowMs();
    o.sim.rate = rate;
    o.sim.duration_ms = (minutes + 10) * 60000LL;
    o.sim.incident_every_ms = 90000;
    o.paced = true;
    o.stop = &stop;
    produced = testing::ProduceSensorReadings(bootstrap_, city_, o);
  });
  struct Sample {
    // fds: open fds but RocksDB's tables (sst_fds), which follow the store's files, not a leak.
    int64_t t_s, rss_kb, fds, sst_fds, store_bytes, lag, life_s;
  };
  std::vector<Sample> samples;
  std::vector<Sample> last_of_life;  // each incarnation's last sample before its kill
  std::vector<int64_t> ready_ms;
  const int64_t t0 = SteadyMs();
  const int64_t end = t0 + minutes * 60000LL;
  const int64_t report_every_ms = std::max<int64_t>(60000, std::min<int64_t>(300000, minutes * 60000LL / 5));
  int64_t next_report = t0 + report_every_ms;
  int restarts = 0;
  auto report = [&](const char* when) {
    const Sample& s = samples.back();
    int64_t max_lag = 0;
    for (const auto& x : samples) max_lag = std::max(max_lag, x.lag);
    Report(std::string("soak ") + when + " t_min=" + std::to_string(s.t_s / 60) +
           " restarts=" + std::to_string(restarts) + " rss_mb=" + std::to_string(s.rss_kb / 1024) +
           " fds=" + std::to_string(s.fds) + " sst_fds=" + std::to_string(s.sst_fds) +
           " store_mb=" + std::to_string(s.store_bytes >> 20) +
           " lag=" + std::to_string(s.lag) + " max_lag=" + std::to_string(max_lag));
  };
  while (SteadyMs() < end) {
    auto engine = Engine();
    const int64_t ready = engine->WaitReady();
    ASSERT_GE(ready, 0) << engine->log();
    ready_ms.push_back(ready);
    const int64_t life_ms = 60000 + static_cast<int64_t>(rng() % 120000);
    const int64_t born = SteadyMs();
    while (SteadyMs() - born < life_ms && SteadyMs() < end) {
      std::this_thread::sleep_for(std::chrono::seconds(5));  // the sampling period
      ASSERT_TRUE(engine->child().Running()) << engine->log();
      const double lag = engine->MetricTotal("cityloop_ingest_lag");
      const int pid = engine->child().pid();
      const testing::OpenFds fds = testing::ProcessOpenFds(pid, ".sst");
      samples.push_back({(SteadyMs() - t0) / 1000, testing::ProcessRssKb(pid), fds.others, fds.apart,
                         testing::DirectoryBytes(store_), static_cast<int64_t>(lag), (SteadyMs() - born) / 1000});
      if (SteadyMs() >= next_report) {
        next_report += report_every_ms;
        report("progress");
      }
    }
    if (!samples.empty()) last_of_life.push_back(samples.back());
    if (SteadyMs() >= end) {
      engine->child().Kill(SIGTERM);
      ASSERT_EQ(engine->child().Wait(std::chrono::seconds(30)), 0) << engine->log();
      break;
    }
    engine->child().Kill(SIGKILL);
    ASSERT_EQ(engine->child().Wait(std::chrono::seconds(30)), 128 + SIGKILL);
    ++restarts;
  }
  stop = true;
  producer.join();
  ASSERT_GT(produced, 0);
  auto last = EngineToTheEnd();
  ASSERT_EQ(last->child().Wait(std::chrono::seconds(300)), 0) << last->log();
  ASSERT_FALSE(samples.empty());
  report("end");
  // A soak of a few minutes may see no incident yet.
  const Verdict v = CheckAgainstOracle("soak", /*require_cases=*/minutes >= 5);
  // Drift: each incarnation's last sample (a similar age, 1-3 min) against
  // the first one's. Bounds: RSS at most 2x + 64 MiB (the state grows with
  // the cases; RocksDB's block cache is 64 MiB), fds + 32 (tables aside: they
  // come and go with compaction, bounded by the store's size), store < 1 GiB.
  const Sample& first = last_of_life.front();
  int64_t rss_max = 0, fds_max = 0, sst_fds_max = 0;
  for (const auto& s : last_of_life) {
    rss_max = std::max(rss_max, s.rss_kb);
    fds_max = std::max(fds_max, s.fds);
    sst_fds_max = std::max(sst_fds_max, s.sst_fds);
  }
  const int64_t store_bytes = samples.back().store_bytes;
  Report("soak result minutes=" + std::to_string(minutes) + " rate=" + std::to_string(static_cast<int>(rate)) +
         "/s produced=" + std::to_string(produced) + " restarts=" + std::to_string(restarts) +
         " ready_max_ms=" + std::to_string(*std::max_element(ready_ms.begin(), ready_ms.end())) +
         " rss_first_mb=" + std::to_string(first.rss_kb / 1024) + " rss_max_mb=" + std::to_string(rss_max / 1024) +
         " fds_first=" + std::to_string(first.fds) + " fds_max=" + std::to_string(fds_max) +
         " sst_fds_max=" + std::to_string(sst_fds_max) +
         " store_mb=" + std::to_string(store_bytes >> 20) + " lost=" + std::to_string(v.lost) +
         " doubled=" + std::to_string(v.doubled) + " output_repeats=" + std::to_string(v.repeats) +
         " digest_equal=" + std::to_string(v.digest_equal));
  EXPECT_EQ(v.lost, 0);
  EXPECT_EQ(v.doubled, 0);
  EXPECT_LE(rss_max, 2 * first.rss_kb + 64 * 1024) << "RSS drift beyond the bound";
  EXPECT_LE(fds_max, first.fds + 32) << "open-fd drift beyond the bound";
  EXPECT_LT(store_bytes, int64_t{1} << 30) << "store growth beyond the bound";
}

}  // namespace
}  // namespace cityloop
