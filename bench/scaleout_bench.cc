// scaleout_bench: throughput of one, two and three instances of one consumer
// group on the same input, as ratios to one instance, and the rebalance time
// when an instance joins or leaves (see docs/PERFORMANCE.md, Scale-out).
//
// Everything runs in this process over the real Kafka protocol against the
// embedded broker: each instance is an app::Engine with scale.shards = 4 on
// its own thread with its own metrics, all sharing one storage directory (the
// shard stores move between them). For each instance count, a fresh
// deployment (own group, work and output topics) starts, waits until every
// instance is ready and all shards are owned, then N gas readings of
// unregistered devices spread over the example city are produced and the
// clock runs until the instances have applied all N. Joining: a further
// instance starts and the clock runs until the shards are spread over all of
// them again; leaving: one stops and the clock runs until its shards are owned
// by the others.
//
// On this 2-core machine every instance, its librdkafka threads and the
// broker share two cores: the ratios show the cost of the extra hop and of
// coordination, not what separate machines would give.
//
// Run from the project root:
//   ./build/bin/scaleout_bench [--messages N] [--max-instances K] [--config PATH]
// Exit status: 0 when it ran, 2 on a setup failure.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "app/engine.h"
#include "bench/bench_util.h"
#include "core/city.h"
#include "core/clock.h"
#include "core/config.h"
#include "ingest/broker.h"
#include "ingest/kafka.h"

namespace cityloop {
namespace {

constexpr const char* kBench = "scaleout_bench";
constexpr int kShards = 4;
using SteadyClock = std::chrono::steady_clock;

template <typename T>
T Must(Result<T> r, const std::string& what) {
  return bench::Must(kBench, std::move(r), what);
}
void Must(const Status& s, const std::string& what) { bench::Must(kBench, s, what); }

double Seconds(SteadyClock::time_point since) {
  return std::chrono::duration<double>(SteadyClock::now() - since).count();
}

// Waits (polling every 10 ms) until cond, or fails after timeout_s.
template <typename Cond>
void Await(Cond cond, double timeout_s, const std::string& what) {
  const auto start = SteadyClock::now();
  while (!cond()) {
    if (Seconds(start) > timeout_s) bench::Fail(kBench, "timed out waiting for " + what);
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

// One instance: an engine on its own thread.
struct Instance {
  MetricsRegistry metrics;
  std::unique_ptr<app::Engine> engine;
  std::atomic<bool> stop{false};
  std::thread thread;
  Status result;

  Instance(std::shared_ptr<const CityModel> city, const app::EngineOptions& options) {
    engine = Must(app::Engine::Create(city, options, SystemClock::instance(), &metrics), "engine");
    thread = std::thread([this] { result = engine->Run(stop); });
  }
  ~Instance() { Stop(); }
  void Stop() {
    stop = true;
    if (thread.joinable()) thread.join();
    if (!result.ok()) bench::Fail(kBench, "engine: " + result.ToString());
  }
  int64_t applied() const {
    return const_cast<MetricsRegistry&>(metrics).GetCounter("cityloop_ingest_messages_total", "").value();
  }
};

// A deployment of its own on the shared broker: group, input, internal and output topics named by
// tag, so that no run sees another's input.
Config Deployment(const Config& base, const std::string& tag) {
  Config cfg = base;
  cfg.scale.shards = kShards;
  cfg.kafka.group_id = "bench-" + tag;
  cfg.kafka.topics.sensors = "bench-sensors-" + tag;
  cfg.kafka.topics.work = "bench-work-" + tag;
  cfg.kafka.topics.changelog = "bench-changelog-" + tag;
  cfg.kafka.topics.cases = "bench-cases-" + tag;
  cfg.kafka.topics.dispatch = "bench-dispatch-" + tag;
  cfg.kafka.topics.dlq = "bench-dlq-" + tag;
  // Short sessions: a member that left is noticed within seconds.
  cfg.kafka.consumer_properties["session.timeout.ms"] = "6000";
  cfg.kafka.consumer_properties["heartbeat.interval.ms"] = "500";
  return cfg;
}

size_t OwnedShards(const std::vector<std::unique_ptr<Instance>>& instances) {
  size_t n = 0;
  for (const auto& i : instances) n += i->engine->owned_shards().size();
  return n;
}

bool AllReady(const std::vector<std::unique_ptr<Instance>>& instances) {
  for (const auto& i : instances) {
    if (!i->engine->ready()) return false;
  }
  return OwnedShards(instances) == kShards;
}

// Every instance owns at least one shard (or all are owned when there are more instances than shards).
bool Spread(const std::vector<std::unique_ptr<Instance>>& instances) {
  if (OwnedShards(instances) != kShards) return false;
  size_t holders = 0;
  for (const auto& i : instances) holders += !i->engine->owned_shards().empty();
  return holders == std::min<size_t>(instances.size(), kShards);
}

std::string Tag(int instances, int round) { return std::to_string(instances) + "-" + std::to_string(round); }

struct Run {
  int instances = 0;
  double produce_s = 0;    // producing all messages (the instances apply them meanwhile)
  double rate = 0;         // messages/s from the first produced to all applied
  double join_s = 0;       // the next instance: start to shards spread again
  double leave_s = 0;      // one instance stopped: to its shards owned by the others
};

Run Measure(const Config& base, const std::string& bootstrap, const std::string& store_root, int n, int round,
            int64_t messages, uint64_t seed) {
  auto city = Must(CityModel::Build(Deployment(base, Tag(n, round))), "city");
  // Each instance has a store directory of its own, as on its own machine: a
  // shard that moves is rebuilt from its changelog (and the read replicas of
  // two instances do not meet in one directory).
  int started = 0;
  auto instance = [&] {
    app::EngineOptions options;
    options.bootstrap = bootstrap;
    options.store_path = store_root + "/run-" + Tag(n, round) + "/instance-" + std::to_string(started++);
    return std::make_unique<Instance>(city, options);
  };
  std::vector<std::unique_ptr<Instance>> instances;
  for (int i = 0; i < n; ++i) instances.push_back(instance());
  Await([&] { return AllReady(instances); }, 120, std::to_string(n) + " instances to own every shard");

  ingest::ProducerOptions po;
  po.bootstrap = bootstrap;
  po.client_id = "bench-load";
  auto producer = Must(ingest::KafkaProducer::Create(po), "producer");
  std::mt19937_64 rng(seed);
  const int cells = city->grid().cell_count();
  std::vector<std::pair<std::string, LatLon>> devices;
  for (int d = 0; d < 2000; ++d) {
    char id[32];
    std::snprintf(id, sizeof id, "bench-gas-%05d", d);
    devices.emplace_back(id, city->grid().Center(static_cast<int>(rng() % static_cast<uint64_t>(cells))));
  }
  const auto start = SteadyClock::now();
  const int64_t t0 = SystemClock::instance().now_ms() - messages;
  for (int64_t m = 0; m < messages; ++m) {
    const auto& [id, pos] = devices[static_cast<size_t>(m) % devices.size()];
    Must(producer->Produce(city->config().kafka.topics.sensors, id, bench::GasReading(id, t0 + m, 10.0, pos)),
         "produce");
  }
  Must(producer->Flush(60000), "flush");
  const double produce_s = Seconds(start);
  auto applied = [&] {
    int64_t sum = 0;
    for (const auto& i : instances) sum += i->applied();
    return sum;
  };
  Await([&] { return applied() >= messages; }, 600, "all messages applied");
  Run r;
  r.instances = n;
  r.produce_s = produce_s;
  r.rate = static_cast<double>(messages) / Seconds(start);

  const auto joined = SteadyClock::now();
  instances.push_back(instance());
  Await([&] { return Spread(instances) && instances.back()->engine->ready(); }, 120, "the joined instance");
  r.join_s = Seconds(joined);
  const auto left = SteadyClock::now();
  instances.front()->Stop();
  instances.erase(instances.begin());
  Await([&] { return Spread(instances); }, 120, "the shards of the instance that left");
  r.leave_s = Seconds(left);
  return r;
}

}  // namespace
}  // namespace cityloop

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

int main(int argc, char** argv) {
  using namespace cityloop;
  int64_t messages = 60000;  // the work topic holds them with headers: under the mock's 5 MiB per partition
  int max_instances = 3;
  int rounds = 3;
  std::string config_path = "deploy/cityloop.example.yaml";
  bench::ForEachFlag(kBench, argc, argv, [&](const std::string& flag, auto value) {
    if (flag == "--messages") messages = std::stoll(value());
    else if (flag == "--max-instances") max_instances = std::stoi(value());
    else if (flag == "--rounds") rounds = std::stoi(value());
    else if (flag == "--config") config_path = value();
    else return false;
    return true;
  });
  spdlog::set_level(spdlog::level::warn);
  ConfigLoadResult loaded = LoadConfigFile(config_path);
  if (!loaded.config) bench::Fail(kBench, "config " + config_path + " does not load");
  Config base = *loaded.config;
  base.kafka.batch_max_messages = 1000;
  // The internal topics need one partition per shard, which the broker's auto-creation does not
  // give: create every run's topics up front.
  ingest::BrokerOptions broker_options = ingest::BrokerOptionsFor(base.kafka);
  for (int n = 1; n <= max_instances; ++n) {
    for (int round = 0; round < rounds; ++round) {
      for (auto& topic : ingest::BrokerOptionsFor(Deployment(base, Tag(n, round)).kafka, kShards).topics) {
        if (std::find(broker_options.topics.begin(), broker_options.topics.end(), topic) ==
            broker_options.topics.end()) {
          broker_options.topics.push_back(topic);
        }
      }
    }
  }
  auto broker = Must(ingest::EmbeddedBroker::Start(broker_options), "broker");
  bench::TempDir dir(kBench, "scaleout");

  // Rounds alternate over the instance counts, so that a slow phase of the machine does not fall on one count.
  std::vector<std::vector<Run>> runs(static_cast<size_t>(max_instances));
  for (int round = 0; round < rounds; ++round) {
    for (int n = 1; n <= max_instances; ++n) {
      runs[static_cast<size_t>(n - 1)].push_back(
          Measure(base, broker->bootstrap(), dir.path(), n, round, messages, 7 + static_cast<uint64_t>(n)));
    }
  }
  std::printf("scaleout_bench: %lld gas readings, %d shards, %d cores, median of %d rounds\n",
              static_cast<long long>(messages), kShards, static_cast<int>(std::thread::hardware_concurrency()),
              rounds);
  auto median = [](const std::vector<Run>& rs, double Run::*field) {
    std::vector<double> v;
    for (const Run& r : rs) v.push_back(r.*field);
    return Median(v);
  };
  const double one = median(runs.front(), &Run::rate);
  for (const auto& rs : runs) {
    const int n = rs.front().instances;
    std::printf("  %d instance%s: %8.0f msg/s  ratio to one instance %.2f  produce %.2f s  join %.1f s  leave %.1f s\n",
                n, n == 1 ? " " : "s", median(rs, &Run::rate), median(rs, &Run::rate) / one,
                median(rs, &Run::produce_s), median(rs, &Run::join_s), median(rs, &Run::leave_s));
    std::printf("    rounds (msg/s):");
    for (const Run& r : rs) std::printf(" %.0f", r.rate);
    std::printf("\n");
  }
  return 0;
}
