// ingest_bench: the end-to-end ingest benchmark (see docs/PERFORMANCE.md).
//
// Everything runs in this process, over the real Kafka protocol against the
// embedded broker (librdkafka's mock cluster):
//
//   1. N simulated sensor readings of the example city are produced to
//      city.sensors (checked against the high watermarks: nothing dropped).
//   2. Baseline: a bare KafkaConsumer (the engine's own consumer class, same
//      batch size, fresh group) reads all N and does nothing else.
//   3. Pipeline: app::Engine on a fresh RocksDB store consumes the same N
//      (decode -> threshold rules -> cases -> one WriteBatch per poll ->
//      offset commit -> outbox publish) and exits once caught up.
//      2 and 3 run --reps times each; the median is reported.
//   4. Breakdown without Kafka: SensorDecoder alone, and Pipeline::Process
//      on a fresh store, over the same messages.
//   5. Latency: a fresh broker and store, a generated 100 x 100 cell city,
//      the engine live on the SystemClock; background readings are paced at
//      half the measured pipeline rate while a gas_ppm trigger for a new cell
//      is sent every 10 ms; each city.dispatch.order on cityloop.dispatch is
//      matched to its trigger by cell code.
//
// Run it from the project root (the default --config is relative):
//   ./build/bin/ingest_bench [--messages N] [--latency-seconds S] [--seed K]
//                            [--config PATH] [--reps R] [--partitions P]
//                            [--background-devices D] [--log-level warn]
// Exit status: 0 when the benchmark ran (whether or not the goals are met),
// 2 on a setup failure (bad flags, config, broker, lost messages, ...).
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <numeric>
#include <optional>
#include <random>
#include <string>
#include <sstream>
#include <thread>
#include <unistd.h>
#include <unordered_map>
#include <utility>
#include <vector>

#include "app/engine.h"
#include "app/pipeline.h"
#include "core/city.h"
#include "core/clock.h"
#include "core/config.h"
#include "core/logging.h"
#include "core/metrics.h"
#include "core/time_util.h"
#include "ingest/broker.h"
#include "ingest/kafka.h"
#include "ingest/offset_query.h"
#include "bench/bench_util.h"
#include "ingest/sensor_decoder.h"
#include "ingest/simulator.h"
#include "storage/store.h"

namespace cityloop {
namespace {

using SteadyClock = std::chrono::steady_clock;
using TimePoint = SteadyClock::time_point;

// The mock cluster keeps 5 MiB of record batches per partition (ingest/broker.cc);
// plan partitions to stay under half of that.
constexpr double kPartitionBudgetBytes = 2.5 * 1024 * 1024;
// Per-record overhead in a v2 record batch (varints, attributes, deltas), roughly.
constexpr size_t kRecordOverheadBytes = 24;

constexpr const char* kBench = "ingest_bench";

[[noreturn]] void Fail(const std::string& what) {
  std::fprintf(stderr, "ingest_bench: SETUP FAILURE: %s\n", what.c_str());
  std::fflush(stdout);
  std::_Exit(2);
}

template <typename T>
T Must(Result<T> r, const std::string& what) {
  if (!r.ok()) Fail(what + ": " + r.status().ToString());
  return std::move(r).value();
}

void Must(const Status& s, const std::string& what) {
  if (!s.ok()) Fail(what + ": " + s.ToString());
}

double Seconds(TimePoint a, TimePoint b) { return std::chrono::duration<double>(b - a).count(); }
double Millis(TimePoint a, TimePoint b) { return std::chrono::duration<double, std::milli>(b - a).count(); }

double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

// Nearest-rank percentile of sorted values.
double Percentile(const std::vector<double>& sorted, double p) {
  if (sorted.empty()) return 0;
  size_t rank = static_cast<size_t>(std::ceil(p / 100.0 * static_cast<double>(sorted.size())));
  rank = std::clamp<size_t>(rank, 1, sorted.size());
  return sorted[rank - 1];
}

// ---------------------------------------------------------------- flags

struct Flags {
  int64_t messages = 200000;
  double latency_seconds = 20;
  uint64_t seed = 1;
  std::string config = "deploy/cityloop.example.yaml";
  int reps = 3;
  int partitions = 0;  // 0 = planned from the message sizes
  // Latency run: unregistered devices sending the background load. 49, as many as the
  // throughput workload has, so "half the pipeline rate" means the same per-device load
  // (with thousands every batch writes thousands of device states and the engine falls behind).
  int background_devices = 49;
  std::string log_level = "warn";
};

void Usage() {
  std::fprintf(stderr,
               "usage: ingest_bench [--messages N] [--latency-seconds S] [--seed K] [--config PATH]\n"
               "                    [--reps R] [--partitions P] [--background-devices D] [--log-level LEVEL]\n"
               "Run from the project root (the default config is deploy/cityloop.example.yaml).\n");
}

Flags ParseFlags(int argc, char** argv) {
  Flags f;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    std::string value;
    bool has_value = false;
    if (auto eq = arg.find('='); arg.rfind("--", 0) == 0 && eq != std::string::npos) {
      value = arg.substr(eq + 1);
      arg = arg.substr(0, eq);
      has_value = true;
    }
    auto next = [&]() -> std::string {
      if (has_value) return value;
      if (i + 1 >= argc) {
        Usage();
        Fail("flag " + arg + " needs a value");
      }
      return argv[++i];
    };
    try {
      if (arg == "--messages") {
        f.messages = std::stoll(next());
      } else if (arg == "--latency-seconds") {
        f.latency_seconds = std::stod(next());
      } else if (arg == "--seed") {
        f.seed = std::stoull(next());
      } else if (arg == "--config") {
        f.config = next();
      } else if (arg == "--reps") {
        f.reps = std::stoi(next());
      } else if (arg == "--partitions") {
        f.partitions = std::stoi(next());
      } else if (arg == "--background-devices") {
        f.background_devices = std::stoi(next());
      } else if (arg == "--log-level") {
        f.log_level = next();
      } else if (arg == "--help" || arg == "-h") {
        Usage();
        std::exit(0);
      } else {
        Usage();
        Fail("unknown flag " + arg);
      }
    } catch (const std::exception& e) {
      Fail("bad value for " + arg + ": " + e.what());
    }
  }
  if (f.messages < 1000) Fail("--messages must be >= 1000");
  if (f.latency_seconds < 1) Fail("--latency-seconds must be >= 1");
  if (f.reps < 1) Fail("--reps must be >= 1");
  if (f.background_devices < 1) Fail("--background-devices must be >= 1");
  if (f.partitions < 0 || f.partitions > 256) Fail("--partitions must be 1..256");
  return f;
}

// ---------------------------------------------------------------- helpers

Config LoadOrDie(const ConfigLoadResult& loaded, const std::string& what) {
  if (!loaded.config) {
    std::string all;
    for (const auto& e : loaded.errors) all += "\n  " + e.ToString();
    Fail("config " + what + " does not load:" + all);
  }
  return *loaded.config;
}

std::shared_ptr<const CityModel> BuildCity(const Config& c) { return Must(CityModel::Build(c), "city model"); }

std::string GroupId(const std::string& tag) {
  static int seq = 0;
  return "bench-" + tag + "-" + std::to_string(::getpid()) + "-" + std::to_string(++seq);
}

// Reads every counter value of a histogram into a short summary.
struct HistSummary {
  int64_t count = 0;
  double sum = 0;
  double mean = 0;
  std::string buckets;  // "<=0.5:n <=1:n ..."
  double p50_bound = 0, p99_bound = 0;  // upper bound of the bucket holding the percentile
};

HistSummary Summarize(const Histogram& h) {
  HistSummary s;
  s.count = h.count();
  s.sum = h.sum();
  s.mean = s.count ? s.sum / static_cast<double>(s.count) : 0;
  const auto counts = h.bucket_counts();
  const auto& bounds = h.bounds();
  int64_t cum = 0;
  bool got50 = false, got99 = false;
  for (size_t i = 0; i < counts.size(); ++i) {
    const double bound = i < bounds.size() ? bounds[i] : INFINITY;
    cum += counts[i];
    if (counts[i]) {
      char buf[64];
      if (i < bounds.size()) {
        std::snprintf(buf, sizeof buf, "%s<=%g:%lld", s.buckets.empty() ? "" : " ", bound,
                      static_cast<long long>(counts[i]));
      } else {
        std::snprintf(buf, sizeof buf, "%s>%g:%lld", s.buckets.empty() ? "" : " ", bounds.back(),
                      static_cast<long long>(counts[i]));
      }
      s.buckets += buf;
    }
    if (!got50 && s.count && cum * 100 >= s.count * 50) {
      s.p50_bound = bound;
      got50 = true;
    }
    if (!got99 && s.count && cum * 100 >= s.count * 99) {
      s.p99_bound = bound;
      got99 = true;
    }
  }
  return s;
}

Histogram& BatchHistogram(MetricsRegistry& m) {
  // Same name, help and bounds as app/pipeline.cc: returns the pipeline's handle.
  return m.GetHistogram("cityloop_batch_process_ms", "Time to process and write one micro-batch (ms)",
                        {0.5, 1, 2, 5, 10, 20, 50, 100, 250, 1000});
}

// ---------------------------------------------------------------- workload

struct Workload {
  std::vector<ingest::SimulatedReading> readings;
  std::vector<int32_t> partition_of;    // per reading
  std::vector<int64_t> per_partition;   // expected message count
  int partitions = 0;
  int64_t bytes = 0;                    // key + value bytes
  int64_t first_ts = 0, last_ts = 0;
  size_t devices = 0;
};

// Devices are spread over partitions by their byte volume (largest first onto
// the lightest partition), so one device stays in one partition (its readings
// in order, as the key partitioner would keep them) and no partition exceeds
// the mock broker's retention.
void PlanPartitions(Workload* w, int forced) {
  std::map<std::string, double> bytes_by_device;
  for (const auto& r : w->readings) {
    bytes_by_device[r.key] += static_cast<double>(r.key.size() + r.value.size() + kRecordOverheadBytes);
  }
  w->devices = bytes_by_device.size();
  std::vector<std::pair<double, std::string>> order;
  for (const auto& [k, b] : bytes_by_device) order.emplace_back(b, k);
  std::sort(order.begin(), order.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
  if (!order.empty() && order.front().first > kPartitionBudgetBytes) {
    Fail("device " + order.front().second + " alone has " + std::to_string(order.front().first / 1048576.0) +
         " MiB of readings, beyond the mock broker's per-partition budget; use fewer --messages");
  }
  std::map<std::string, int32_t> assigned;
  const int first = forced > 0 ? forced : 4;
  const int last = forced > 0 ? forced : 256;
  for (int p = first; p <= last; ++p) {
    std::vector<double> load(static_cast<size_t>(p), 0.0);
    assigned.clear();
    for (const auto& [b, k] : order) {
      auto it = std::min_element(load.begin(), load.end());
      *it += b;
      assigned[k] = static_cast<int32_t>(it - load.begin());
    }
    const double max_load = *std::max_element(load.begin(), load.end());
    if (max_load <= kPartitionBudgetBytes) {
      w->partitions = p;
      break;
    }
    if (forced > 0) {
      Fail("--partitions " + std::to_string(forced) + " puts " + std::to_string(max_load / 1048576.0) +
           " MiB on one partition, beyond the mock broker's budget");
    }
  }
  if (w->partitions == 0) Fail("no partition count up to 256 keeps every partition under the broker's retention");
  w->per_partition.assign(static_cast<size_t>(w->partitions), 0);
  w->partition_of.reserve(w->readings.size());
  for (const auto& r : w->readings) {
    const int32_t p = assigned[r.key];
    w->partition_of.push_back(p);
    ++w->per_partition[static_cast<size_t>(p)];
  }
}

Workload Generate(const std::shared_ptr<const CityModel>& city, int64_t n, uint64_t seed, int forced_partitions) {
  Workload w;
  ingest::SimulatorOptions so;
  so.seed = seed;
  so.start_ms = *ParseRfc3339Ms("2026-11-28T06:00:00+08:00");
  so.duration_ms = 0;  // endless: take exactly n
  so.camera_every_ms = 0;  // sensor readings only: the benchmark is the sensor path
  ingest::Simulator sim(city, so);
  w.readings.resize(static_cast<size_t>(n));
  for (auto& r : w.readings) {
    do {
      if (!sim.Next(&r)) Fail("the simulator ended early");
    } while (r.topic != city->config().kafka.topics.sensors);  // reports of injected incidents
    w.bytes += static_cast<int64_t>(r.key.size() + r.value.size());
  }
  w.first_ts = w.readings.front().ts_ms;
  w.last_ts = w.readings.back().ts_ms;
  PlanPartitions(&w, forced_partitions);
  return w;
}

void ProduceAll(const std::string& bootstrap, const Workload& w, const std::string& topic) {
  std::atomic<int64_t> failed{0};
  ingest::ProducerOptions po;
  po.bootstrap = bootstrap;
  po.client_id = "bench-loader";
  auto producer = Must(ingest::KafkaProducer::Create(po, [&failed](uint64_t, const Status& st) {
                         if (!st.ok()) failed.fetch_add(1);
                       }),
                       "loader producer");
  const auto t0 = SteadyClock::now();
  for (size_t i = 0; i < w.readings.size(); ++i) {
    const auto& r = w.readings[i];
    Must(producer->Produce(topic, r.key, r.value, {}, 0, w.partition_of[i]), "produce");
    if (i % 1000 == 999) producer->Poll(0);
  }
  Must(producer->Flush(120000), "flush the loader");
  const double s = Seconds(t0, SteadyClock::now());
  if (failed.load() > 0) Fail(std::to_string(failed.load()) + " readings were not delivered");
  std::printf("  produced %zu readings in %.2f s (%.0f msgs/s, acks=all, idempotent)\n", w.readings.size(), s,
              static_cast<double>(w.readings.size()) / s);
}

void VerifyWatermarks(const std::string& bootstrap, const Workload& w, const std::string& topic) {
  auto q = Must(ingest::OffsetQuery::Create(bootstrap), "offset query");
  auto highs = Must(q->HighWatermarks(topic), "high watermarks");
  int64_t total = 0;
  for (const auto& [p, h] : highs) total += h;
  if (static_cast<int>(highs.size()) != w.partitions) {
    Fail(topic + " has " + std::to_string(highs.size()) + " partitions, expected " + std::to_string(w.partitions));
  }
  for (int p = 0; p < w.partitions; ++p) {
    const int64_t want = w.per_partition[static_cast<size_t>(p)];
    auto it = highs.find(p);
    if (it == highs.end() || it->second != want) {
      Fail(topic + "/" + std::to_string(p) + " high watermark " +
           (it == highs.end() ? std::string("missing") : std::to_string(it->second)) + ", expected " +
           std::to_string(want));
    }
  }
  if (total != static_cast<int64_t>(w.readings.size())) {
    Fail("high watermarks sum to " + std::to_string(total) + ", expected " + std::to_string(w.readings.size()));
  }
  std::printf("  high watermarks of %s sum to %lld over %d partitions: as produced\n", topic.c_str(),
              static_cast<long long>(total), w.partitions);
}

// ---------------------------------------------------------------- throughput

struct RunFigures {
  double wall_s = 0;    // Create .. done (includes the group join)
  double steady_s = 0;  // first message .. last message handled
  double join_s = 0;    // Create .. first message
};

// Baseline: the engine's consumer class with the engine's batch size, nothing else.
RunFigures MeasureBare(const std::string& bootstrap, const Config& cfg, const Workload& w) {
  RunFigures f;
  ingest::ConsumerOptions co;
  co.bootstrap = bootstrap;
  co.group_id = GroupId("bare");
  co.client_id = "bench-bare";
  co.topics = {cfg.kafka.topics.sensors};
  co.properties = cfg.kafka.ConsumerProperties();
  const size_t batch_max = static_cast<size_t>(cfg.kafka.batch_max_messages);
  const int wait_ms = static_cast<int>(cfg.kafka.batch_max_ms);
  const auto t0 = SteadyClock::now();
  auto consumer = Must(ingest::KafkaConsumer::Create(co, [](const std::string&, int32_t) {
                         return std::optional<int64_t>(0);
                       }),
                       "bare consumer");
  const int64_t n = static_cast<int64_t>(w.readings.size());
  std::vector<int64_t> next(static_cast<size_t>(w.partitions), 0);
  std::vector<ingest::Message> batch;
  int64_t got = 0;
  TimePoint first{}, last{};
  const auto deadline = t0 + std::chrono::seconds(120);
  while (got < n) {
    batch.clear();
    Must(consumer->Poll(batch_max, wait_ms, &batch), "bare poll");
    if (!batch.empty()) {
      const auto now = SteadyClock::now();
      if (got == 0) first = now;
      for (const auto& m : batch) {
        auto& nx = next.at(static_cast<size_t>(m.partition));
        if (m.offset != nx) {
          Fail("bare consumer: " + m.topic + "/" + std::to_string(m.partition) + " jumped from offset " +
               std::to_string(nx) + " to " + std::to_string(m.offset) + " (the broker dropped data?)");
        }
        nx = m.offset + 1;
      }
      got += static_cast<int64_t>(batch.size());
      last = now;
    }
    if (SteadyClock::now() > deadline) {
      Fail("bare consumer read only " + std::to_string(got) + " of " + std::to_string(n) + " messages in 120 s");
    }
  }
  const auto t1 = SteadyClock::now();
  consumer->Close();
  f.wall_s = Seconds(t0, t1);
  f.steady_s = Seconds(first, last);
  f.join_s = Seconds(t0, first);
  return f;
}

struct PipelineFigures : RunFigures {
  int64_t batches = 0;
  int64_t cases = 0;
  int64_t rejected = 0;
  HistSummary batch_ms;
};

PipelineFigures MeasurePipeline(const std::string& bootstrap, const Config& base, const Workload& w) {
  PipelineFigures f;
  Config cfg = base;
  cfg.kafka.group_id = GroupId("pipeline");  // a fresh store must not resume from an older run's commits
  auto city = BuildCity(cfg);
  bench::TempDir dir(kBench, "store");
  ManualClock clock(w.last_ts + 60000);  // the end of the simulated span: no skew rejections
  MetricsRegistry metrics;
  app::EngineOptions eo;
  eo.bootstrap = bootstrap;
  eo.store_path = dir.path() + "/store";
  eo.exit_when_caught_up = true;

  const auto t0 = SteadyClock::now();
  auto engine = Must(app::Engine::Create(city, eo, clock, &metrics), "engine");
  Counter& messages = metrics.GetCounter("cityloop_ingest_messages_total", "Input messages read from Kafka");
  Counter& batches = metrics.GetCounter("cityloop_batches_total", "Micro-batches written to the store");

  // Samples the pipeline's counters every millisecond to find when the first
  // message was taken and when the last batch was written.
  struct Sample {
    TimePoint at;
    int64_t messages, batches;
  };
  std::vector<Sample> samples;
  samples.reserve(1 << 16);
  std::atomic<bool> sampling{true};
  std::thread sampler([&] {
    while (sampling.load()) {
      samples.push_back({SteadyClock::now(), messages.value(), batches.value()});
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    samples.push_back({SteadyClock::now(), messages.value(), batches.value()});
  });
  std::atomic<bool> stop{false};
  Status run = engine->Run(stop);
  const auto t1 = SteadyClock::now();
  sampling.store(false);
  sampler.join();
  Must(run, "engine run");

  const int64_t n = static_cast<int64_t>(w.readings.size());
  if (messages.value() != n) {
    Fail("the engine read " + std::to_string(messages.value()) + " messages, expected " + std::to_string(n));
  }
  f.batches = batches.value();
  TimePoint first{}, last{};
  bool have_first = false, have_last = false;
  for (const auto& s : samples) {
    if (!have_first && s.messages > 0) {
      first = s.at;
      have_first = true;
    }
    if (!have_last && s.batches == f.batches) {
      last = s.at;
      have_last = true;
    }
  }
  if (!have_first || !have_last) Fail("the sampler saw no progress");
  f.wall_s = Seconds(t0, t1);
  f.steady_s = std::max(Seconds(first, last), 1e-3);
  f.join_s = Seconds(t0, first);
  f.cases = metrics.CounterTotal("cityloop_cases_opened_total");
  f.rejected = metrics.CounterTotal("cityloop_ingest_rejected_total");
  if (f.rejected != 0) {  // name the reasons before failing
    std::istringstream lines(metrics.RenderPrometheus());
    for (std::string line; std::getline(lines, line);) {
      if (line.rfind("cityloop_ingest_rejected_total{", 0) == 0) std::printf("  %s\n", line.c_str());
    }
  }
  f.batch_ms = Summarize(BatchHistogram(metrics));
  engine.reset();
  return f;
}

// ---------------------------------------------------------------- breakdown (no Kafka)

struct Breakdown {
  double decode_us = 0;    // per message, SensorDecoder::Decode alone
  double process_us = 0;   // per message, Pipeline::Process incl. the RocksDB write
  double rate_process = 0; // msgs/s of Pipeline::Process alone
  HistSummary batch_ms;
};

// Setup check, before anything is timed: every generated reading decodes
// (else the first rejected one and its reason).
void CheckWorkloadDecodes(const std::shared_ptr<const CityModel>& city, const Workload& w) {
  ingest::SensorDecoder decoder(city);
  const int64_t now = w.last_ts + 60000;
  for (const auto& r : w.readings) {
    const auto out = decoder.Decode(r.value, now);
    if (const auto* no = std::get_if<ingest::Rejection>(&out)) {
      Fail("a simulated reading does not decode: " + r.value + " (" + no->ToString() + ")");
    }
  }
}

Breakdown MeasureBreakdown(const std::shared_ptr<const CityModel>& city, const Workload& w) {
  Breakdown b;
  const int64_t now = w.last_ts + 60000;
  {
    ingest::SensorDecoder decoder(city);
    size_t ok = 0;
    const auto t0 = SteadyClock::now();
    for (const auto& r : w.readings) ok += std::holds_alternative<Reading>(decoder.Decode(r.value, now));
    const double s = Seconds(t0, SteadyClock::now());
    if (ok != w.readings.size()) Fail("the decoder rejected " + std::to_string(w.readings.size() - ok) + " readings");
    b.decode_us = s * 1e6 / static_cast<double>(w.readings.size());
  }
  // Messages as the consumer would hand them over, in partition-batches like a poll.
  const auto& cfg = city->config();
  std::vector<ingest::Message> all;
  all.reserve(w.readings.size());
  std::vector<int64_t> next(static_cast<size_t>(w.partitions), 0);
  for (size_t i = 0; i < w.readings.size(); ++i) {
    ingest::Message m;
    m.topic = cfg.kafka.topics.sensors;
    m.partition = w.partition_of[i];
    m.offset = next[static_cast<size_t>(m.partition)]++;
    m.key = w.readings[i].key;
    m.value = w.readings[i].value;
    m.timestamp_ms = w.readings[i].ts_ms;
    all.push_back(std::move(m));
  }
  bench::TempDir dir(kBench, "breakdown");
  storage::StoreOptions so;
  so.sync = cfg.storage.sync_writes;
  auto store = Must(storage::Store::Open(dir.path() + "/store", so), "breakdown store");
  ManualClock clock(now);
  MetricsRegistry metrics;
  app::Pipeline pipeline(city, store.get(), clock, &metrics);
  Must(pipeline.Restore(), "pipeline restore");
  const size_t batch_max = static_cast<size_t>(cfg.kafka.batch_max_messages);
  std::vector<ingest::Message> batch;
  app::BatchResult result;
  const auto t0 = SteadyClock::now();
  for (size_t i = 0; i < all.size(); i += batch_max) {
    batch.assign(std::make_move_iterator(all.begin() + static_cast<std::ptrdiff_t>(i)),
                 std::make_move_iterator(all.begin() + static_cast<std::ptrdiff_t>(std::min(all.size(), i + batch_max))));
    Must(pipeline.Process(batch, &result), "pipeline process");
  }
  const double s = Seconds(t0, SteadyClock::now());
  b.process_us = s * 1e6 / static_cast<double>(all.size());
  b.rate_process = static_cast<double>(all.size()) / s;
  b.batch_ms = Summarize(BatchHistogram(metrics));
  return b;
}

// ---------------------------------------------------------------- latency

struct LatencyFigures {
  double target_rate = 0;
  double achieved_rate = 0;
  int64_t background = 0;
  int64_t triggers = 0;
  int64_t orders = 0;
  int64_t unmatched = 0;
  int64_t duplicates = 0;
  std::vector<double> latency_ms;  // sorted
  std::vector<double> ack_ms;      // sorted: trigger produce -> broker ack at the producer
  std::vector<double> engine_ms;   // sorted: trigger ts -> the order's Kafka timestamp (ms resolution)
  std::vector<double> reader_ms;   // sorted: the order's Kafka timestamp -> received
  int64_t engine_messages = 0;
  int64_t rejected = 0;
  HistSummary batch_ms;
  int64_t batches = 0;
};

std::string LatencyConfigYaml(const Config& base, int partitions, int side) {
  const int64_t wait = base.kafka.batch_max_ms;
  std::string y;
  y += "kafka:\n";
  y += "  group_id: " + GroupId("latency") + "\n";
  y += "  client_id: bench-latency\n";
  y += "  partitions: " + std::to_string(partitions) + "\n";
  y += "  batch:\n";
  y += "    max_messages: " + std::to_string(base.kafka.batch_max_messages) + "\n";
  y += "    max_wait: " + std::to_string(wait) + "ms\n";
  y += "storage:\n  sync: " + std::string(base.storage.sync_writes ? "true" : "false") + "\n";
  y += "city:\n";
  y += "  name: latency bench grid\n";
  y += "  utc_offset: \"+08:00\"\n";
  y += "  grid: {origin: {lat: 28.1, lon: 112.9}, cell_size_m: 100, rows: " + std::to_string(side) +
       ", cols: " + std::to_string(side) + "}\n";
  y += "  districts:\n";
  y += "    - id: bench\n";
  y += "      name: Bench district\n";
  y += "      code: \"430199\"\n";
  y += "      default_department: gas\n";
  y += "      streets:\n";
  y += "        - id: bench-street\n";
  y += "          name: Bench street\n";
  y += "          code: \"001\"\n";
  y += "          communities:\n";
  y += "            - {id: bench-community, name: Bench community, code: \"001\", rows: [0, " +
       std::to_string(side - 1) + "], cols: [0, " + std::to_string(side - 1) + "]}\n";
  y += "  departments:\n";
  y += "    - {id: gas, name: Gas}\n";
  y += "  catalogue:\n";
  y += "    - {id: gas_leak, name: Gas leak, code: \"0105\", department: gas, priority: urgent}\n";
  y += "  units:\n";
  y += "    - {id: gas-u1, department: gas, name: Gas unit 1, lat: 28.12, lon: 112.92}\n";
  y += "rules:\n";
  y += "  - {id: gas-leak, kind: threshold, sensor: gas_ppm, category: gas_leak, above: 500, clear: 300, for: 0s}\n";
  y += "merge:\n  window: 30m\n  radius_m: 0\n";  // every trigger cell its own case
  y += "sla:\n  acknowledge: {urgent: 10m}\n  handle: {urgent: 1h}\n";
  return y;
}

LatencyFigures MeasureLatency(const Config& base, int partitions, double rate, double seconds, uint64_t seed,
                              int background_devices) {
  LatencyFigures f;
  f.target_rate = rate;
  constexpr int kTriggerEveryMs = 10;
  const int64_t want_triggers = static_cast<int64_t>(seconds * 1000 / kTriggerEveryMs) + 10;
  const int side = std::clamp(static_cast<int>(std::ceil(std::sqrt(static_cast<double>(want_triggers) * 1.05))), 100, 1000);
  const std::string yaml = LatencyConfigYaml(base, partitions, side);
  Config cfg = LoadOrDie(LoadConfigText(yaml, "<latency bench config>"), "generated for the latency run");
  auto city = BuildCity(cfg);
  const int cells = city->grid().cell_count();
  if (want_triggers > cells) Fail("--latency-seconds too long for the largest grid");

  auto broker = Must(ingest::EmbeddedBroker::Start(ingest::BrokerOptionsFor(cfg.kafka)), "latency broker");
  const std::string bootstrap = broker->bootstrap();
  bench::TempDir dir(kBench, "latency");
  MetricsRegistry metrics;
  app::EngineOptions eo;
  eo.bootstrap = bootstrap;
  eo.store_path = dir.path() + "/store";
  eo.exit_when_caught_up = false;
  auto engine = Must(app::Engine::Create(city, eo, SystemClock::instance(), &metrics), "latency engine");
  std::atomic<bool> stop_engine{false};
  Status engine_status;
  std::thread engine_thread([&] { engine_status = engine->Run(stop_engine); });

  // Triggers: cell code -> index; send and ack times per index.
  std::mutex mu;
  std::unordered_map<std::string, int64_t> trigger_by_cell;
  std::vector<TimePoint> sent(static_cast<size_t>(want_triggers));
  std::vector<TimePoint> acked(static_cast<size_t>(want_triggers));
  std::vector<int64_t> sent_wall_ms(static_cast<size_t>(want_triggers));  // the trigger's ts
  std::vector<char> answered(static_cast<size_t>(want_triggers), 0);
  std::vector<double> latencies, engine_part, reader_part;
  std::atomic<int64_t> orders{0}, unmatched{0}, duplicates{0};

  // The measuring consumer on the dispatch topic. fetch.wait.max.ms is cut so
  // that a broker holding an empty fetch (up to 500 ms by default) does not
  // add to what is measured; the engine's own consumer keeps the config's
  // properties (none).
  std::atomic<bool> reader_ready{false};
  ingest::ConsumerOptions co;
  co.bootstrap = bootstrap;
  co.group_id = GroupId("dispatch-reader");
  co.client_id = "bench-dispatch-reader";
  co.topics = {cfg.kafka.topics.dispatch};
  co.properties = {{"fetch.wait.max.ms", "1"}, {"fetch.error.backoff.ms", "1"}};
  auto reader = Must(ingest::KafkaConsumer::Create(
                         co, [](const std::string&, int32_t) { return std::optional<int64_t>(); },
                         [&reader_ready](bool assigned, const std::vector<ingest::PartitionOffset>&) {
                           if (assigned) reader_ready.store(true);
                         }),
                     "dispatch reader");
  std::atomic<bool> stop_reader{false};
  std::thread reader_thread([&] {
    std::vector<ingest::Message> batch;
    while (!stop_reader.load()) {
      batch.clear();
      Status st = reader->Poll(1000, 5, &batch);
      const auto now = SteadyClock::now();
      if (!st.ok()) {
        spdlog::error("dispatch reader: {}", st.ToString());
        break;
      }
      for (const auto& m : batch) {
        auto j = nlohmann::json::parse(m.value, nullptr, false);
        if (j.is_discarded() || j.value("type", "") != "city.dispatch.order") continue;
        orders.fetch_add(1);
        const std::string grid = j["data"].value("grid", "");
        std::lock_guard<std::mutex> lock(mu);
        auto it = trigger_by_cell.find(grid);
        if (it == trigger_by_cell.end()) {
          unmatched.fetch_add(1);
          continue;
        }
        const size_t idx = static_cast<size_t>(it->second);
        if (answered[idx]) {
          duplicates.fetch_add(1);
          continue;
        }
        answered[idx] = 1;
        latencies.push_back(Millis(sent[idx], now));
        // The split at the order record's Kafka timestamp (set when the engine produced it).
        engine_part.push_back(static_cast<double>(m.timestamp_ms - sent_wall_ms[idx]));
        reader_part.push_back(static_cast<double>(SystemClock::instance().now_ms() - m.timestamp_ms));
      }
    }
    reader->Close();
  });

  const auto ready_deadline = SteadyClock::now() + std::chrono::seconds(60);
  while (!(engine->ready() && reader_ready.load())) {
    if (SteadyClock::now() > ready_deadline) Fail("engine or dispatch reader got no partitions within 60 s");
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }

  // The load generator.
  ingest::ProducerOptions po;
  po.bootstrap = bootstrap;
  po.client_id = "bench-load";
  po.linger_ms = 1;  // a sensor gateway that sends promptly; see docs/PERFORMANCE.md
  std::atomic<int64_t> failed{0};
  auto producer = Must(ingest::KafkaProducer::Create(po,
                                                     [&](uint64_t opaque, const Status& st) {
                                                       if (!st.ok()) failed.fetch_add(1);
                                                       if (opaque > 0) acked[opaque - 1] = SteadyClock::now();
                                                     }),
                       "load producer");
  std::mt19937_64 rng(seed ^ 0x6c6174656e6379ULL);
  std::vector<std::pair<std::string, LatLon>> bg;
  for (int i = 0; i < background_devices; ++i) {
    char id[32];
    std::snprintf(id, sizeof id, "bg-%05d", i);
    bg.emplace_back(id, city->grid().Center(static_cast<int>(rng() % static_cast<uint64_t>(cells))));
  }
  std::vector<int> cell_order(static_cast<size_t>(cells));
  std::iota(cell_order.begin(), cell_order.end(), 0);
  std::shuffle(cell_order.begin(), cell_order.end(), rng);
  const std::string& topic = cfg.kafka.topics.sensors;

  const auto t0 = SteadyClock::now();
  const auto t_end = t0 + std::chrono::duration_cast<SteadyClock::duration>(std::chrono::duration<double>(seconds));
  int64_t next_bg = 0;
  size_t bg_i = 0;
  auto next_trigger = t0;
  for (auto now = t0; now < t_end; now = SteadyClock::now()) {
    const int64_t wall = SystemClock::instance().now_ms();
    const int64_t due = static_cast<int64_t>(rate * Seconds(t0, now));
    for (; next_bg < due; ++next_bg) {
      const auto& [dev, pos] = bg[bg_i];
      bg_i = (bg_i + 1) % bg.size();
      Must(producer->Produce(topic, dev, bench::GasReading(dev, wall, 10.0, pos)), "produce background");
    }
    if (now >= next_trigger && f.triggers < want_triggers) {
      const int64_t idx = f.triggers++;
      const int cell = cell_order[static_cast<size_t>(idx)];
      const LatLon pos = city->grid().Center(cell);
      const CellInfo* info = city->CellAt(pos);
      if (!info) Fail("a cell centre lies outside the grid");
      char id[32];
      std::snprintf(id, sizeof id, "trig-%06lld", static_cast<long long>(idx));
      const int64_t ts = SystemClock::instance().now_ms();
      const std::string value = bench::GasReading(id, ts, 900.0, pos);
      {
        std::lock_guard<std::mutex> lock(mu);
        trigger_by_cell[info->code] = idx;
        sent_wall_ms[static_cast<size_t>(idx)] = ts;
        sent[static_cast<size_t>(idx)] = SteadyClock::now();
      }
      Must(producer->Produce(topic, id, value, {}, static_cast<uint64_t>(idx + 1)), "produce trigger");
      next_trigger += std::chrono::milliseconds(kTriggerEveryMs);
    }
    producer->Poll(0);
    std::this_thread::sleep_for(std::chrono::microseconds(500));
  }
  const double produced_s = Seconds(t0, SteadyClock::now());
  f.background = next_bg;
  f.achieved_rate = static_cast<double>(next_bg + f.triggers) / produced_s;
  Must(producer->Flush(30000), "flush the load producer");
  if (failed.load() > 0) Fail(std::to_string(failed.load()) + " load messages were not delivered");

  // Let the last orders arrive.
  const auto drain_deadline = SteadyClock::now() + std::chrono::seconds(10);
  while (SteadyClock::now() < drain_deadline) {
    {
      std::lock_guard<std::mutex> lock(mu);
      if (static_cast<int64_t>(latencies.size()) >= f.triggers) break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  stop_reader.store(true);
  reader_thread.join();
  stop_engine.store(true);
  engine_thread.join();
  Must(engine_status, "latency engine run");
  engine.reset();

  f.orders = orders.load();
  f.unmatched = unmatched.load();
  f.duplicates = duplicates.load();
  f.latency_ms = latencies;
  std::sort(f.latency_ms.begin(), f.latency_ms.end());
  f.engine_ms = engine_part;
  std::sort(f.engine_ms.begin(), f.engine_ms.end());
  f.reader_ms = reader_part;
  std::sort(f.reader_ms.begin(), f.reader_ms.end());
  for (int64_t i = 0; i < f.triggers; ++i) {
    const auto& a = acked[static_cast<size_t>(i)];
    if (a != TimePoint{}) f.ack_ms.push_back(Millis(sent[static_cast<size_t>(i)], a));
  }
  std::sort(f.ack_ms.begin(), f.ack_ms.end());
  f.engine_messages = metrics.CounterTotal("cityloop_ingest_messages_total");
  f.rejected = metrics.CounterTotal("cityloop_ingest_rejected_total");
  f.batches = metrics.CounterTotal("cityloop_batches_total");
  f.batch_ms = Summarize(BatchHistogram(metrics));
  return f;
}

void PrintHist(const char* label, const HistSummary& h) {
  std::printf("  %s: %lld batches, mean %.2f ms, p50 <= %g ms, p99 <= %g ms, total %.2f s\n    buckets %s\n", label,
              static_cast<long long>(h.count), h.mean, h.p50_bound, h.p99_bound, h.sum / 1000.0, h.buckets.c_str());
}

int Main(int argc, char** argv) {
  const Flags flags = ParseFlags(argc, argv);
  Must(InitLogging("text", flags.log_level), "logging");

  std::printf("ingest_bench: messages=%lld latency_seconds=%g seed=%llu reps=%d config=%s\n",
              static_cast<long long>(flags.messages), flags.latency_seconds,
              static_cast<unsigned long long>(flags.seed), flags.reps, flags.config.c_str());
  std::printf("  cpus: %u hardware threads\n", std::thread::hardware_concurrency());
  Config base = LoadOrDie(LoadConfigFile(flags.config), flags.config + " (run from the project root or pass --config)");
  const auto city0 = BuildCity(base);

  // 1. Workload.
  std::printf("\n[1] workload\n");
  const auto g0 = SteadyClock::now();
  Workload w = Generate(city0, flags.messages, flags.seed, flags.partitions);
  std::printf("  simulated %zu readings from %zu devices in %.2f s: %.1f MiB (avg %.0f B), city time %s .. %s\n",
              w.readings.size(), w.devices, Seconds(g0, SteadyClock::now()),
              static_cast<double>(w.bytes) / 1048576.0,
              static_cast<double>(w.bytes) / static_cast<double>(w.readings.size()),
              FormatRfc3339Ms(w.first_ts).c_str(), FormatRfc3339Ms(w.last_ts).c_str());
  const int64_t max_part = *std::max_element(w.per_partition.begin(), w.per_partition.end());
  std::printf("  %d partitions (devices placed by volume; busiest holds %lld readings)\n", w.partitions,
              static_cast<long long>(max_part));
  base.kafka.partitions = w.partitions;
  CheckWorkloadDecodes(BuildCity(base), w);

  auto broker = Must(ingest::EmbeddedBroker::Start(ingest::BrokerOptionsFor(base.kafka)), "embedded broker");
  const std::string bootstrap = broker->bootstrap();
  ProduceAll(bootstrap, w, base.kafka.topics.sensors);
  VerifyWatermarks(bootstrap, w, base.kafka.topics.sensors);

  // 2 + 3. Throughput, alternating so drift hits both alike.
  const double n = static_cast<double>(w.readings.size());
  std::vector<double> bare_steady, bare_wall, pipe_steady, pipe_wall;
  std::vector<PipelineFigures> pipes;
  std::printf("\n[2,3] throughput: bare consume vs full pipeline, %d rep(s) each\n", flags.reps);
  for (int rep = 1; rep <= flags.reps; ++rep) {
    RunFigures b = MeasureBare(bootstrap, base, w);
    bare_steady.push_back(n / b.steady_s);
    bare_wall.push_back(n / b.wall_s);
    std::printf("  rep %d bare:     steady %9.0f msgs/s (%.3f s)  wall %8.0f msgs/s (%.2f s, join %.2f s)\n", rep,
                n / b.steady_s, b.steady_s, n / b.wall_s, b.wall_s, b.join_s);
    PipelineFigures p = MeasurePipeline(bootstrap, base, w);
    pipe_steady.push_back(n / p.steady_s);
    pipe_wall.push_back(n / p.wall_s);
    std::printf(
        "  rep %d pipeline: steady %9.0f msgs/s (%.3f s)  wall %8.0f msgs/s (%.2f s, join %.2f s)  batches %lld "
        "(avg %.0f msgs), cases %lld, rejected %lld, in Process %.2f s\n",
        rep, n / p.steady_s, p.steady_s, n / p.wall_s, p.wall_s, p.join_s, static_cast<long long>(p.batches),
        n / static_cast<double>(std::max<int64_t>(p.batches, 1)), static_cast<long long>(p.cases),
        static_cast<long long>(p.rejected), p.batch_ms.sum / 1000.0);
    if (p.rejected != 0) Fail("the pipeline rejected simulated readings (clock/skew set-up is wrong)");
    pipes.push_back(p);
  }
  const double bare_rate = Median(bare_steady);
  const double pipe_rate = Median(pipe_steady);
  const double ratio = pipe_rate / bare_rate;
  const double wall_ratio = Median(pipe_wall) / Median(bare_wall);
  // The pipeline rep closest to the median, for its batch histogram.
  const PipelineFigures* mid = &pipes[0];
  for (const auto& p : pipes) {
    if (std::fabs(n / p.steady_s - pipe_rate) < std::fabs(n / mid->steady_s - pipe_rate)) mid = &p;
  }
  PrintHist("pipeline cityloop_batch_process_ms (median rep)", mid->batch_ms);
  const double in_process = mid->batch_ms.sum / 1000.0 / mid->steady_s;
  std::printf("  share of the pipeline's steady window spent in Pipeline::Process: %.0f %%\n", in_process * 100);
  broker.reset();

  // 4. Breakdown.
  std::printf("\n[4] breakdown without Kafka (same messages, batches of %d)\n", base.kafka.batch_max_messages);
  Breakdown bd = MeasureBreakdown(BuildCity(base), w);
  std::printf("  SensorDecoder::Decode alone: %.2f us/msg (%.0f msgs/s)\n", bd.decode_us, 1e6 / bd.decode_us);
  std::printf("  Pipeline::Process (decode+rules+cases+WriteBatch+RocksDB): %.2f us/msg (%.0f msgs/s)\n",
              bd.process_us, bd.rate_process);
  PrintHist("Pipeline::Process cityloop_batch_process_ms", bd.batch_ms);

  // 5. Latency at half the pipeline rate.
  const double half = pipe_rate / 2;
  std::printf("\n[5] latency: background %.0f msgs/s from %d devices for %g s, a trigger for a new cell every 10 ms\n",
              half, flags.background_devices, flags.latency_seconds);
  LatencyFigures lat = MeasureLatency(base, w.partitions, half, flags.latency_seconds, flags.seed,
                                      flags.background_devices);
  const auto& l = lat.latency_ms;
  std::printf("  sent %lld background + %lld triggers (%.0f msgs/s achieved); engine read %lld, rejected %lld\n",
              static_cast<long long>(lat.background), static_cast<long long>(lat.triggers), lat.achieved_rate,
              static_cast<long long>(lat.engine_messages), static_cast<long long>(lat.rejected));
  std::printf("  dispatch orders: %lld (matched %zu, unmatched %lld, duplicate %lld)\n",
              static_cast<long long>(lat.orders), l.size(), static_cast<long long>(lat.unmatched),
              static_cast<long long>(lat.duplicates));
  std::printf("  trigger -> dispatch order received: p50 %.2f ms, p90 %.2f ms, p99 %.2f ms, max %.2f ms (n=%zu)\n",
              Percentile(l, 50), Percentile(l, 90), Percentile(l, 99), l.empty() ? 0.0 : l.back(), l.size());
  std::printf("  of which trigger -> broker ack at the producer: p50 %.2f ms, p99 %.2f ms\n",
              Percentile(lat.ack_ms, 50), Percentile(lat.ack_ms, 99));
  std::printf("  split at the order's Kafka timestamp: trigger -> order produced p50 %.0f ms, p99 %.0f ms; "
              "order produced -> received p50 %.0f ms, p99 %.0f ms\n",
              Percentile(lat.engine_ms, 50), Percentile(lat.engine_ms, 99), Percentile(lat.reader_ms, 50),
              Percentile(lat.reader_ms, 99));
  PrintHist("engine cityloop_batch_process_ms", lat.batch_ms);
  if (lat.triggers == 0 || static_cast<double>(l.size()) < 0.9 * static_cast<double>(lat.triggers)) {
    Fail("only " + std::to_string(l.size()) + " of " + std::to_string(lat.triggers) +
         " triggers produced a dispatch order");
  }

  const double p99 = Percentile(l, 99);
  std::printf("\n==== result ====\n");
  std::printf("pipeline_rate=%.0f msgs/s, bare_consume_rate=%.0f msgs/s, ratio=%.2f (wall-clock incl. group join: "
              "%.0f / %.0f = %.2f)\n",
              pipe_rate, bare_rate, ratio, Median(pipe_wall), Median(bare_wall), wall_ratio);
  std::printf("latency at %.0f msgs/s: p50=%.2f ms, p90=%.2f ms, p99=%.2f ms, max=%.2f ms, orders=%zu/%lld\n", half,
              Percentile(l, 50), Percentile(l, 90), p99, l.empty() ? 0.0 : l.back(), l.size(),
              static_cast<long long>(lat.triggers));
  std::printf("pipeline_rate=%.0f, bare_consume_rate=%.0f, ratio=%.2f, latency_p99_ms=%.2f, goal ratio>=0.50: %s, "
              "goal p99<10ms: %s\n",
              pipe_rate, bare_rate, ratio, p99, ratio >= 0.5 ? "PASS" : "FAIL", p99 < 10 ? "PASS" : "FAIL");
  std::fflush(stdout);
  return 0;
}

}  // namespace
}  // namespace cityloop

int main(int argc, char** argv) { return cityloop::Main(argc, argv); }
