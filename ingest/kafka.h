// Kafka access for the engine and tools, over the real Kafka protocol with
// librdkafka (against the embedded broker or a real cluster). librdkafka is
// used only inside ingest/; these types hide it.
//
// KafkaConsumer: a consumer-group member. On every partition assignment it
// asks the OffsetLookup where to start (the offsets stored in RocksDB with the
// state) and seeks there; Kafka's own committed offsets are only a fallback.
// Offsets are committed to Kafka by CommitAsync after the state batch is
// written. One thread calls Poll/Commit; librdkafka runs its own threads.
//
// KafkaProducer: produces with delivery reports (acks=all, idempotent).
// Produce is thread-safe; callbacks run on the thread calling Poll/Flush.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/status.h"

namespace cityloop::ingest {

using Headers = std::vector<std::pair<std::string, std::string>>;

struct Message {
  std::string topic;
  int32_t partition = 0;
  int64_t offset = -1;
  std::string key;
  std::string value;
  Headers headers;
  int64_t timestamp_ms = 0;  // Kafka message timestamp
  const std::string* header(const std::string& name) const;
};

struct PartitionOffset {
  std::string topic;
  int32_t partition = 0;
  int64_t next_offset = 0;  // the offset of the next message to read
};

// Where to resume a partition: the next offset to read, or nullopt to start
// from auto.offset.reset (earliest).
using OffsetLookup = std::function<std::optional<int64_t>(const std::string& topic, int32_t partition)>;
// Told about assignment changes (after seeking). Called on the polling thread.
using RebalanceListener = std::function<void(bool assigned, const std::vector<PartitionOffset>& partitions)>;

struct ConsumerOptions {
  std::string bootstrap;
  std::string group_id = "cityloop";
  std::string client_id = "cityloop";
  std::vector<std::string> topics;
  std::map<std::string, std::string> properties;  // extra librdkafka properties
  // Read every partition of `topics` without joining a group (no rebalance
  // wait; for tools and tests that read whole topics). OffsetLookup still
  // gives each partition's start (nullopt: the beginning); CommitAsync fails.
  bool assign_all_partitions = false;
};

class KafkaConsumer {
 public:
  static Result<std::unique_ptr<KafkaConsumer>> Create(const ConsumerOptions& options, OffsetLookup lookup,
                                                      RebalanceListener listener = nullptr);
  virtual ~KafkaConsumer() = default;
  // Appends up to max_messages to out, waiting at most timeout_ms for the
  // first and then taking whatever else is ready. Transient broker errors are
  // logged and counted, not returned; a fatal error returns non-OK.
  virtual Status Poll(size_t max_messages, int timeout_ms, std::vector<Message>* out) = 0;
  virtual Status CommitAsync(const std::vector<PartitionOffset>& offsets) = 0;
  // Stop / restart fetching every assigned partition (backpressure).
  virtual Status Pause() = 0;
  virtual Status Resume() = 0;
  virtual std::vector<PartitionOffset> Assignment() const = 0;
  // A partition's end (high watermark) as the last fetch response told it:
  // librdkafka's cache, no broker round trip, so it answers at once with the
  // broker down. nullopt before a fetch of it; stale while it is paused.
  virtual std::optional<int64_t> CachedHighWatermark(const std::string& topic, int32_t partition) const = 0;
  // The group's offsets committed in Kafka for the current assignment
  // (next_offset -1 where there is none).
  virtual Result<std::vector<PartitionOffset>> Committed(int timeout_ms) const = 0;
  // Leaves the group cleanly.
  virtual void Close() = 0;
};

struct ProducerOptions {
  std::string bootstrap;
  std::string client_id = "cityloop";
  std::map<std::string, std::string> properties;
  int linger_ms = 5;  // the outbox uses 1: dispatch latency matters more than batching
};

// Delivery result of one Produce; `opaque` is what the caller passed.
using DeliveryCallback = std::function<void(uint64_t opaque, const Status& status)>;

class KafkaProducer {
 public:
  static Result<std::unique_ptr<KafkaProducer>> Create(const ProducerOptions& options,
                                                       DeliveryCallback on_delivery = nullptr);
  virtual ~KafkaProducer() = default;
  // partition < 0: by key hash (librdkafka's consistent_random partitioner).
  // timestamp_ms: the record's Kafka timestamp (CreateTime); 0 = now.
  virtual Status Produce(const std::string& topic, const std::string& key, const std::string& value,
                         const Headers& headers = {}, uint64_t opaque = 0, int32_t partition = -1,
                         int64_t timestamp_ms = 0) = 0;
  // Serves delivery callbacks.
  virtual void Poll(int timeout_ms) = 0;
  // Waits until everything is delivered or timeout; non-OK if some is still queued.
  virtual Status Flush(int timeout_ms) = 0;
  virtual size_t InFlight() const = 0;
};

// Whether every KafkaConsumer of this process reaches the cluster: false
// from librdkafka's ALL_BROKERS_DOWN on one of them until it is connected to
// a broker again (its statistics, every statistics.interval.ms — 1 s unless
// kafka.properties says otherwise — or a fetched message show it). True when
// there is no consumer. For readiness (/readyz); any thread.
bool KafkaBrokersReachable();

// Number of partitions of topic as the cluster reports it.
Result<int> PartitionCount(const std::string& bootstrap, const std::string& topic, int timeout_ms = 5000);

}  // namespace cityloop::ingest
