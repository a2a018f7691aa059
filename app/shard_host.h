// ShardHost: the shards this instance owns when the service scales out
// (scale.shards > 0). A member of the consumer group "<kafka.group_id>-shards"
// on the work topic; each assigned partition is one shard with its own
// store (<storage.path>/shard-NNN), Pipeline, outbox publisher and
// changelog (ShardChangelog), so one shard's state is its own key range that
// moves as a whole.
//
// On assignment a shard opens its store — rebuilt from the changelog when
// another instance owned it since — and restores before its first message
// (the consumer seeks to the work-topic offset stored there). On revocation
// it drains its outbox and changelog and closes, so the next owner, on this
// machine or another, continues exactly where it stopped. Each message carries its source coordinates (ShardRouter); a
// shard applies a source offset once, whatever the router sent twice, and
// writes the source offsets and its work-topic offset in the same batch as
// the state they produced.
// Owned and called by the engine thread.
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "app/outbox_publisher.h"
#include "app/pipeline.h"
#include "app/shard_changelog.h"
#include "console/backend.h"
#include "core/city.h"
#include "core/clock.h"
#include "core/metrics.h"
#include "ingest/kafka.h"
#include "storage/store.h"

namespace cityloop::app {

// The directory of shard `index` under the storage path.
std::string ShardStorePath(const std::string& storage_path, int index);

class ShardHost {
 public:
  struct Options {
    std::string bootstrap;
    std::string storage_path;
    size_t max_in_flight = 50000;  // outbox records in flight before consumption pauses
    console::EventHub* hub = nullptr;
  };
  static Result<std::unique_ptr<ShardHost>> Create(std::shared_ptr<const CityModel> city, const Options& options,
                                                   const Clock& clock, MetricsRegistry* metrics);
  ~ShardHost();

  // One poll of the work topic; each shard's part processed, written and
  // published; idle shards tick. *idle: nothing came.
  Status Step(int timeout_ms, bool* idle);
  // Drains every shard's outbox, commits and leaves the group.
  Status Close();
  // Whether every owned shard has applied its work partition up to `ends`
  // (partition -> high watermark) and published everything.
  bool CaughtUp(const std::map<int32_t, int64_t>& ends) const;
  std::vector<int32_t> owned() const;
  bool assigned() const { return assigned_.load(); }
  detect::ReloadSummary ReloadRules(std::shared_ptr<const CityModel> city);
  // The owned shards' KPI books added up, and their case census.
  dispatch::KpiBook Kpi() const;
  dispatch::CaseEngine::Census Census() const;
  // Work partition -> next offset to apply, per owned shard.
  std::map<int32_t, int64_t> Positions() const;
  // The work partition's end as the consumer last fetched it (KafkaConsumer::CachedHighWatermark).
  std::optional<int64_t> CachedWorkEnd(int32_t partition) const;
  // The stores of the owned shards, for reads from other threads.
  std::vector<std::shared_ptr<const storage::Store>> stores() const;

 private:
  struct Shard;
  ShardHost(std::shared_ptr<const CityModel> city, const Options& options, const Clock& clock,
            MetricsRegistry* metrics);
  Result<Shard*> Open(int32_t partition);
  void Release(int32_t partition);
  Status ProcessShard(Shard& shard, std::vector<ingest::Message>& messages);
  Status Publish(Shard& shard);

  std::shared_ptr<const CityModel> city_;
  Options options_;
  const Clock& clock_;
  MetricsRegistry* metrics_;
  std::unique_ptr<ingest::KafkaConsumer> consumer_;
  mutable std::mutex shards_mu_;  // guards the map (not the shards) for stores()
  std::map<int32_t, std::unique_ptr<Shard>> shards_;
  std::vector<ingest::Message> batch_;
  std::vector<ingest::PartitionOffset> uncommitted_;
  bool paused_ = false;
  Status fatal_;  // an error inside a rebalance callback, returned by the next Step
  std::atomic<bool> assigned_{false};
  Counter* duplicates_;
  Counter* restored_;
};

}  // namespace cityloop::app
