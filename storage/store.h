// Store: cityloop's durable state in RocksDB. Column families:
//   cases    case id            -> case JSON
//   audit    case id \0 seq(4B big-endian) -> audit entry JSON (every change, with actor and reason)
//   outbox   seq (8B big-endian)-> OutboxRecord (encoded); deleted once Kafka acked it
//   offsets  topic \0 partition -> next offset to read (decimal text)
//   state    free-form key      -> detector / engine state bytes
//   meta     key                -> value ("schema_version", counters)
//   snapshots snapshot id       -> JPEG bytes (camera events; retention by detect/camera)
//   events   seq (8B big-endian)-> topic \0 CloudEvents JSON: the case and dispatch events
//                                  published, kept for the live stream's resume (Last-Event-ID)
// Everything one micro-batch changes goes into one WriteBatch and is written
// atomically by Write(): state, audit, outbox and input offsets together.
// A Store is used by one engine thread; reads are safe from other threads.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/status.h"

namespace cityloop::storage {

inline constexpr int kSchemaVersion = 1;

struct OutboxRecord {
  uint64_t seq = 0;  // assigned by the engine; publishing order
  std::string topic;
  std::string key;
  std::string value;
  std::vector<std::pair<std::string, std::string>> headers;
};
std::string EncodeOutboxRecord(const OutboxRecord& r);
Result<OutboxRecord> DecodeOutboxRecord(uint64_t seq, std::string_view bytes);

struct TopicPartition {
  std::string topic;
  int32_t partition = 0;
  bool operator<(const TopicPartition& o) const {
    return topic != o.topic ? topic < o.topic : partition < o.partition;
  }
  bool operator==(const TopicPartition& o) const { return topic == o.topic && partition == o.partition; }
};

class Store;

// Changes to apply atomically. Cheap to build; bound to the Store that made it
// and must not outlive it.
class WriteBatch {
 public:
  WriteBatch(WriteBatch&&) noexcept;
  WriteBatch& operator=(WriteBatch&&) noexcept;
  ~WriteBatch();

  void PutCase(std::string_view case_id, std::string_view json);
  void PutAudit(std::string_view case_id, uint32_t seq, std::string_view json);
  void PutOutbox(const OutboxRecord& record);
  void PutOffset(const TopicPartition& tp, int64_t next_offset);
  void PutState(std::string_view key, std::string_view value);
  void DeleteState(std::string_view key);
  void PutSnapshot(std::string_view id, std::string_view jpeg);
  void DeleteSnapshot(std::string_view id);
  void PutMeta(std::string_view key, std::string_view value);
  void DeleteMeta(std::string_view key);
  void PutEvent(uint64_t seq, std::string_view topic, std::string_view json);
  void DeleteEventsBefore(uint64_t seq);  // the event log's retention
  size_t count() const;  // number of operations

 private:
  friend class Store;
  struct Rep;
  explicit WriteBatch(std::unique_ptr<Rep> rep);
  std::unique_ptr<Rep> rep_;
};

struct StoreOptions {
  bool sync = false;             // fsync the WAL on every Write
  bool create_if_missing = true;
};

class Store {
 public:
  // Opens (or creates) the store at path. Fails with kFailedPrecondition when
  // the schema version on disk is newer than this build knows.
  static Result<std::unique_ptr<Store>> Open(const std::string& path, const StoreOptions& options = {});
  ~Store();

  WriteBatch NewBatch();
  Status Write(WriteBatch&& batch);

  Result<std::optional<std::string>> GetCase(std::string_view case_id) const;
  // Calls fn for every case in id order; stops early when fn returns false.
  Status ForEachCase(const std::function<bool(std::string_view id, std::string_view json)>& fn) const;
  // Cases with ids after after_id, in id order ("" = from the first).
  Status ForEachCaseAfter(std::string_view after_id,
                          const std::function<bool(std::string_view id, std::string_view json)>& fn) const;
  // Event log records with seq > after, ascending.
  Status ForEachEventAfter(uint64_t after,
                           const std::function<bool(uint64_t seq, std::string_view topic, std::string_view json)>& fn) const;
  uint64_t FirstEventSeq() const;  // 0 when the log is empty
  Status ForEachAudit(std::string_view case_id,
                      const std::function<bool(uint32_t seq, std::string_view json)>& fn) const;
  // Outbox records in seq order.
  Status ForEachOutbox(const std::function<bool(const OutboxRecord&)>& fn) const;
  Status DeleteOutbox(const std::vector<uint64_t>& seqs);
  std::optional<int64_t> GetOffset(const TopicPartition& tp) const;
  std::map<TopicPartition, int64_t> AllOffsets() const;
  Result<std::optional<std::string>> GetState(std::string_view key) const;
  Status ForEachState(std::string_view prefix,
                      const std::function<bool(std::string_view key, std::string_view value)>& fn) const;
  Result<std::optional<std::string>> GetSnapshot(std::string_view id) const;
  Status ForEachSnapshot(std::string_view prefix,
                         const std::function<bool(std::string_view id, std::string_view jpeg)>& fn) const;
  Result<std::optional<std::string>> GetMeta(std::string_view key) const;

  // Replication (a shard's changelog). A change set is a self-contained
  // encoding of one write: its puts, deletes and range deletes, column
  // families by name, so it applies to any store of this schema.
  // Once a listener is set, every write (Write and DeleteOutbox) also puts
  // meta[kChangeSeqKey] = its number (1, 2, ... continuing what is stored),
  // and after it succeeds the listener gets the number and the change set,
  // on the writing thread.
  static constexpr std::string_view kChangeSeqKey = "change_seq";
  using ChangeListener = std::function<void(uint64_t seq, std::string_view change_set)>;
  Status SetChangeListener(ChangeListener listener);
  uint64_t change_seq() const;  // of the last write (0: none numbered yet)
  // Applies a change set from another store, atomically (not passed to the listener).
  Status ApplyChangeSet(std::string_view change_set);
  // The whole store (every column family but meta's schema_version) as
  // change sets of about chunk_bytes each, from one consistent snapshot.
  Status ExportChangeSets(size_t chunk_bytes, const std::function<Status(std::string_view change_set)>& fn) const;

  int schema_version() const;
  const std::string& path() const;

 private:
  struct Impl;
  explicit Store(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace cityloop::storage
