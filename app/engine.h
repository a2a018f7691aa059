// Engine: the streaming service. Its loop, on one thread:
//   poll up to N messages or T ms -> Pipeline::Process (one atomic WriteBatch
//   of state + audit + outbox + offsets) -> commit offsets to Kafka ->
//   publish the outbox.
// On start and on every partition assignment the consumer seeks to the
// offsets stored in RocksDB, so a crash anywhere loses nothing and applies
// nothing twice. A full outbox pauses consumption instead of growing memory.
// With scale.shards > 0 the same loop drives a ShardRouter (input -> work
// topic) and a ShardHost (the shards this instance owns, each a Pipeline
// with its own store) instead of one Pipeline over the input topics.
#pragma once

#include <atomic>
#include <chrono>
#include <mutex>
#include <map>
#include <memory>
#include <string>

#include "app/outbox_publisher.h"
#include "app/pipeline.h"
#include "app/shard_host.h"
#include "app/shard_replicas.h"
#include "app/shard_router.h"
#include "core/city.h"
#include "core/clock.h"
#include "core/metrics.h"
#include "ingest/kafka.h"
#include "ingest/offset_query.h"
#include "replay/replay_log.h"
#include "console/backend.h"
#include "dispatch/kpi.h"
#include "storage/store.h"

namespace cityloop::app {

struct EngineOptions {
  std::string bootstrap;        // overrides kafka.bootstrap when set
  std::string store_path;       // overrides storage.path when set
  size_t max_in_flight = 50000; // outbox records in flight before consumption pauses
  // Return from Run() once every assigned partition is consumed up to its
  // high watermark and the outbox is empty (catch up a backlog, then exit).
  bool exit_when_caught_up = false;
  // The config file, re-read on Reload() (SIGHUP).
  std::string config_path;
  // Records every input the pipeline applies, with its ingest time and the
  // idle clock advances, into this replay log (run --record): replaying it
  // reproduces the run exactly.
  std::string record_dir;
  // The console's live feed: every case and dispatch event, after its batch
  // is in the store. May be null.
  console::EventHub* hub = nullptr;
};

class Engine {
 public:
  static Result<std::unique_ptr<Engine>> Create(std::shared_ptr<const CityModel> city, const EngineOptions& options,
                                                const Clock& clock, MetricsRegistry* metrics);
  ~Engine();
  // Runs until stop becomes true, then drains the outbox and leaves the group.
  // Whenever *reload is true it is reset and the rules are reloaded.
  // Returns non-OK on a fatal error (the store could not be written).
  Status Run(const std::atomic<bool>& stop, std::atomic<bool>* reload = nullptr);
  // Re-reads options.config_path and swaps in its rules (and merge
  // settings). The new file is validated first: any error, or a change to
  // the city section, changes nothing and is returned. Changes to other
  // sections are logged and take effect at the next start.
  Status Reload();
  // True once the store is restored and the consumer has its first assignment.
  bool ready() const { return ready_.load(); }
  // Steady-clock ms of the loop's latest iteration (0 before the first): the
  // systemd watchdog pings only while this is recent (app/service_notifier.h).
  int64_t loop_heartbeat_ms() const { return loop_heartbeat_ms_.load(std::memory_order_relaxed); }
  // The store (scale.shards = 0 only), for reads from other threads.
  const storage::Store& store() const { return *store_; }
  // The stores, for reads from other threads (the HTTP API): the one store,
  // or (scale.shards > 0) those of the shards this instance owns now and the
  // read replicas of all the others.
  std::vector<std::shared_ptr<const storage::Store>> stores() const;
  // The shards this instance owns now (scale.shards > 0; else empty).
  std::vector<int32_t> owned_shards() const { return shards_ ? shards_->owned() : std::vector<int32_t>{}; }
  // The KPI book as of at most ~1 s ago, for other threads (the HTTP API);
  // sharded, of every shard (owned ones and replicas).
  std::shared_ptr<const dispatch::KpiBook> kpi() const;

 private:
  Engine() = default;
  // Whether the last poll found nothing to do.
  Status Step(bool* idle);
  Status StepShards(bool* idle);
  Status CreateShards(const std::string& bootstrap);
  dispatch::KpiBook ShardedKpi(bool replicas_too);
  Result<bool> CaughtUp();
  // Commits the stored offsets to Kafka when due (or at once when `now`).
  Status MaybeCommit(bool now);
  // Publishes a written batch and notes its offsets for the next commit.
  Status Publish();
  // run --record: appends what the pipeline just applied (a batch, or a tick
  // that moved event time). A failing recording is reported, then dropped:
  // the city's incidents matter more than the recording of them.
  void Record(bool tick);
  Status OpenRecording();
  // Every few seconds: the KPI snapshot, and the gauges that need a look at
  // all cases or at the cluster (lag per partition, cases by status and light).
  void Refresh(bool force);

  std::shared_ptr<const CityModel> city_;
  EngineOptions options_;
  MetricsRegistry* metrics_ = nullptr;
  const Clock* clock_ = nullptr;
  Histogram* poll_ms_ = nullptr;
  std::map<storage::TopicPartition, int64_t> uncommitted_;
  int64_t last_commit_ms_ = 0;
  std::shared_ptr<storage::Store> store_;  // scale.shards = 0
  std::unique_ptr<ShardRouter> router_;     // scale.shards > 0
  std::unique_ptr<ShardHost> shards_;       // scale.shards > 0
  std::unique_ptr<ShardReplicas> replicas_;  // scale.shards > 0: every shard, for the API
  std::unique_ptr<Pipeline> pipeline_;
  std::unique_ptr<OutboxPublisher> publisher_;
  std::unique_ptr<ingest::KafkaConsumer> consumer_;
  std::unique_ptr<ingest::OffsetQuery> offsets_;
  std::unique_ptr<replay::LogWriter> recorder_;
  mutable std::mutex kpi_mu_;
  std::shared_ptr<const dispatch::KpiBook> kpi_;
  std::unique_ptr<dispatch::KpiBook> replica_kpi_;  // sharded: the replicas' part, rebuilt every few seconds
  std::chrono::steady_clock::time_point last_kpi_, last_gauges_;
  std::vector<console::StreamEvent> stream_;
  Counter* recorded_ = nullptr;
  Counter* record_errors_ = nullptr;
  std::vector<ingest::Message> batch_;
  BatchResult result_;
  bool paused_ = false;
  std::atomic<bool> ready_{false};
  std::atomic<int64_t> loop_heartbeat_ms_{0};
};

}  // namespace cityloop::app
