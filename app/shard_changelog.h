// ShardChangelog: a shard's store mirrored into its partition of
// kafka.topics.changelog, so that whichever instance is assigned the shard
// can rebuild it, on any machine.
//
// Every write to the store (storage::Store change sets, numbered by the
// store's change_seq) is produced as one record; on each opening, and once
// the records since the last snapshot exceed kSnapshotBytes, the whole store
// (and at least every kSnapshotEvery) is produced as a snapshot. Records (key "shard-NNN") carry headers:
//   x-cl-kind   snapshot-begin | snapshot | snapshot-end | change
//   x-cl-epoch  the owner's epoch: one more than any before it, taken on opening
//   x-cl-seq    change: the change's number; snapshot-end: the last number it holds
//   x-cl-base   the offset of the snapshot-begin of the latest complete snapshot
//   x-cl-part   "i/n" when a change set is split over several records
// Restore reads the base of the partition's last record to the end: the
// snapshot of that epoch, then that epoch's changes in order. Records of other
// epochs after it — an old owner that has not noticed it lost the shard —
// are ignored, so a zombie cannot corrupt the state; it only loses its own
// late writes, which the new owner re-derives from the work topic (the
// offsets are part of the state).
//
// A local store is kept when it is at least as new as the changelog (same
// epoch, change_seq at least the last record's); else it is wiped and rebuilt.
// Owned and called by the engine thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "core/city.h"
#include "core/metrics.h"
#include "ingest/kafka.h"
#include "ingest/offset_query.h"
#include "storage/store.h"

namespace cityloop::app {

// Where a changelog partition ends and what its last record says.
struct ChangelogTail {
  int64_t high = 0;   // the partition's end
  int64_t epoch = 0;  // of the last record
  int64_t seq = 0;    // the last change number it covers
  int64_t base = -1;  // the begin offset of the latest complete snapshot (-1: none)
};
Result<ChangelogTail> ReadChangelogTail(ingest::OffsetQuery& query, const std::string& topic, int32_t partition);

// A store at path, emptied first; with remove_when_closed its directory goes
// when the last reference does (scratch and replica stores).
Result<std::shared_ptr<storage::Store>> OpenFresh(const std::string& path, const storage::StoreOptions& options,
                                                  bool remove_when_closed);

// Applies a shard changelog's records, in offset order: from the first
// snapshot met (into a store from make_store), then the changes of that
// snapshot's epoch. A complete snapshot of a newer epoch (the shard moved)
// replaces the store; records of other epochs are ignored. One thread.
class ChangelogFollower {
 public:
  using MakeStore = std::function<Result<std::shared_ptr<storage::Store>>()>;
  explicit ChangelogFollower(MakeStore make_store);
  Status Apply(const ingest::Message& record);
  // The store as of the records applied; null until a snapshot completed.
  const std::shared_ptr<storage::Store>& current() const { return current_; }
  uint64_t epoch() const { return epoch_; }
  size_t changes() const { return changes_; }  // applied since the snapshot

 private:
  MakeStore make_store_;
  std::shared_ptr<storage::Store> current_, building_;
  uint64_t epoch_ = 0;
  int64_t building_epoch_ = -1;
  int64_t applied_seq_ = -1;
  size_t changes_ = 0;
  std::string pending_;  // parts of a split change set
  int64_t pending_seq_ = -1;
};

class ShardChangelog {
 public:
  // Records since the last snapshot beyond this many bytes start a new one
  // (bounds restore time, and keeps the base within the topic's retention:
  // the embedded broker keeps 5 MiB per partition).
  static constexpr size_t kSnapshotBytes = 2u << 20;
  // And at least this often, so the snapshot outlives a quiet shard within
  // the topic's time retention (which must be longer).
  static constexpr std::chrono::hours kSnapshotEvery{1};

  struct Opened {
    std::shared_ptr<storage::Store> store;
    std::unique_ptr<ShardChangelog> changelog;
    bool restored = false;  // rebuilt from the changelog (else the local store was current)
  };
  // Opens the store at path for shard `partition`, restored from the
  // changelog when that is newer, and starts mirroring it (a new epoch and snapshot).
  static Result<Opened> Open(std::shared_ptr<const CityModel> city, const std::string& bootstrap,
                             int32_t partition, const std::string& path, const storage::StoreOptions& options,
                             MetricsRegistry* metrics);
  ~ShardChangelog();

  // Serves delivery reports; starts a snapshot when due or after a failure.
  Status Poll();
  // Waits until everything produced is acknowledged.
  Status Flush(int timeout_ms);

 private:
  ShardChangelog(std::shared_ptr<const CityModel> city, int32_t partition, MetricsRegistry* metrics);
  void OnChange(uint64_t seq, std::string_view change_set);
  Status Snapshot();
  Status Produce(const char* kind, uint64_t seq, std::string_view value, const std::string& part = "");

  std::shared_ptr<const CityModel> city_;
  int32_t partition_;
  std::string topic_, key_;
  std::unique_ptr<ingest::OffsetQuery> query_;  // where the partition ends, for a snapshot's offset
  std::shared_ptr<storage::Store> store_;  // shared: the listener must go before the store
  std::unique_ptr<ingest::KafkaProducer> producer_;
  uint64_t epoch_ = 0;
  int64_t base_ = -1;           // offset of the latest complete snapshot's begin record
  size_t bytes_since_snapshot_ = 0;
  std::chrono::steady_clock::time_point last_snapshot_;
  bool broken_ = false;         // a record was not produced: the next Poll snapshots again
  int failed_deliveries_ = 0;   // delivery callbacks run on this thread (Poll/Flush)
  Counter* records_;
  Counter* snapshots_;
  Counter* failures_;
};

}  // namespace cityloop::app
