// ShardRouter: the first hop when the service scales out (scale.shards > 0).
// A member of the consumer group kafka.group_id on the input topics, it
// forwards each message unchanged (key, value, headers, Kafka timestamp) to
// the partition of kafka.topics.work that owns it — the shard of its
// district (core/shard.h) — adding where it came from (kSource* headers).
// Unit status goes to every shard, since each routes to the whole fleet; the
// copies beyond the home shard carry kCopyHeader. A command goes to the shard
// its case id names.
//
// Stateless: input offsets are committed to Kafka only after everything
// before them is acknowledged by the work topic (idempotent producer, so
// order per partition holds), so a crash or a rebalance forwards again and
// never loses; a shard drops what it applied already by the source offset.
// Forwarding is pipelined: a step does not wait for the acknowledgements of
// what it forwarded (at most kMaxPending inputs are unacknowledged); offsets
// follow them, committed at most every 200 ms.
// Owned and called by one thread.
#pragma once

#include <chrono>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/city.h"
#include "core/metrics.h"
#include "ingest/kafka.h"
#include "ingest/offset_query.h"
#include "storage/store.h"

namespace cityloop::app {

inline const std::string kSourceTopicHeader = "x-cityloop-source-topic";
inline const std::string kSourcePartitionHeader = "x-cityloop-source-partition";
inline const std::string kSourceOffsetHeader = "x-cityloop-source-offset";
inline const std::string kCopyHeader = "x-cityloop-copy";

class ShardRouter {
 public:
  // Fails when the work topic's partition count differs from scale.shards.
  static Result<std::unique_ptr<ShardRouter>> Create(std::shared_ptr<const CityModel> city,
                                                     const std::string& bootstrap, MetricsRegistry* metrics);
  ~ShardRouter();
  // Forwards what one poll (up to timeout_ms) returns and commits the input
  // offsets the work topic has acknowledged (when due). *idle: nothing came.
  // Non-OK when forwarding failed for good (the caller stops; a restart
  // forwards again from the committed offsets).
  Status Step(int timeout_ms, bool* idle);
  // Flushes, commits and leaves the group.
  void Close();
  bool assigned() const { return assigned_; }
  // Whether every assigned input partition is forwarded and committed up to its end.
  Result<bool> CaughtUp(ingest::OffsetQuery& offsets);

  // The shard that owns m, or -1 for every shard (unit status).
  static int ShardOf(const CityModel& city, const ingest::Message& m, int shards);

 private:
  ShardRouter(std::shared_ptr<const CityModel> city, MetricsRegistry* metrics);
  // One input on its way: how many of its records are not yet acknowledged.
  struct PendingInput {
    storage::TopicPartition source;
    int64_t offset = 0;
    int outstanding = 0;
    bool sealed = false;  // all its records are produced
  };
  static constexpr size_t kMaxPending = 50000;

  Status Forward(const ingest::Message& m, uint64_t seq);
  // For what the work topic refuses (too large with the routing headers).
  Status DeadLetter(const ingest::Message& m, uint64_t seq, const Status& why);
  // Produces one record of input seq, serving deliveries while the local queue is full.
  Status ProduceTracked(uint64_t seq, const std::string& topic, const ingest::Message& m, const std::string& value,
                        const ingest::Headers& headers, int32_t partition);
  void OnDelivery(uint64_t seq, const Status& st);
  // Moves the acknowledged prefix of pending_ into acked_.
  void CollectAcknowledged();
  Status DeliveryFailure() const;
  // Commits what is acknowledged when due; with wait_ms > 0 first waits that
  // long for everything in flight (revocation, close) and commits now.
  Status Settle(int wait_ms);

  std::shared_ptr<const CityModel> city_;
  int shards_ = 0;
  std::unique_ptr<ingest::KafkaConsumer> consumer_;
  std::unique_ptr<ingest::KafkaProducer> producer_;
  std::vector<ingest::Message> batch_;
  std::deque<PendingInput> pending_;  // in forwarding order
  uint64_t pending_front_seq_ = 0;     // the seq of pending_.front()
  std::map<storage::TopicPartition, int64_t> acked_;  // next offsets, acknowledged but not committed
  int failed_deliveries_ = 0;  // delivery callbacks run on this thread (producer Poll/Flush)
  std::string first_failure_;
  bool assigned_ = false;
  std::chrono::steady_clock::time_point last_commit_;
  Counter* routed_;
  Counter* broadcast_;
  Counter* unroutable_;
};

}  // namespace cityloop::app
