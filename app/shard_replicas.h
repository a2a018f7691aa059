// ShardReplicas: a read-only copy of every shard, followed from the shard
// changelogs (ChangelogFollower), so that the API of any instance answers for
// every case, not only for the shards it owns (the shared read view of
// docs/ARCHITECTURE.md, Scale-out). A replica lags its owner by the changelog's
// delivery (milliseconds); it is rebuilt from the latest snapshot at each
// start and switches to the new owner's snapshot when a shard moves.
// Poll on the engine thread; stores() from any thread.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "app/shard_changelog.h"
#include "console/backend.h"
#include "core/city.h"
#include "core/metrics.h"
#include "ingest/kafka.h"
#include "storage/store.h"

namespace cityloop::app {

class ShardReplicas {
 public:
  // Replica stores live under <storage_path>/replica-NNN-<generation>, removed when dropped.
  static Result<std::unique_ptr<ShardReplicas>> Create(std::shared_ptr<const CityModel> city,
                                                       const std::string& bootstrap, const std::string& storage_path,
                                                       MetricsRegistry* metrics);
  // Applies what the changelogs brought, waiting at most timeout_ms, and
  // passes the new case and dispatch events of shards not in `owned` to hub
  // (may be null; the owned ones' reach it from their shard).
  Status Poll(int timeout_ms, const std::vector<int32_t>& owned, console::EventHub* hub);
  // The replicas of every shard not in `owned` that has one yet.
  std::vector<std::shared_ptr<const storage::Store>> stores(const std::vector<int32_t>& owned) const;

 private:
  struct Replica {
    std::unique_ptr<ChangelogFollower> follower;
    int generation = 0;
    std::optional<uint64_t> last_event;  // the newest event seq seen in it (unset: not looked yet)
  };
  explicit ShardReplicas(std::shared_ptr<const CityModel> city) : city_(std::move(city)) {}

  std::shared_ptr<const CityModel> city_;
  std::string storage_path_;
  std::unique_ptr<ingest::KafkaConsumer> consumer_;
  std::map<int32_t, Replica> replicas_;  // engine thread
  mutable std::mutex mu_;
  std::map<int32_t, std::shared_ptr<storage::Store>> published_;  // guarded: what readers get
  std::vector<ingest::Message> batch_;
  std::vector<console::StreamEvent> stream_;
  Counter* applied_;
};

}  // namespace cityloop::app
