// OutboxPublisher: moves outbox records from RocksDB to Kafka. Records are
// produced in seq order after their batch is durable; a record is deleted from
// the store only once Kafka acknowledged it, and one that failed is produced
// again. On start, whatever a previous run left in the outbox is sent first —
// so a crash can resend (same CloudEvents id), never lose. A record the
// producer refuses for now (kUnavailable: its queue full, or a topic in an
// error state such as TOPIC_AUTHORIZATION_FAILED until the metadata is
// refreshed) stays in flight and is produced again on a later Poll, with
// backoff; any other refusal is returned (the engine stops).
// Called from the engine thread only.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <vector>

#include "core/config.h"
#include "core/metrics.h"
#include "ingest/kafka.h"
#include "storage/store.h"

namespace cityloop::app {

class OutboxPublisher {
 public:
  static Result<std::unique_ptr<OutboxPublisher>> Create(const ingest::ProducerOptions& options,
                                                         storage::Store* store, MetricsRegistry* metrics);
  // The publisher of store's outbox with the engine's producer settings
  // (client id `client_id`, 1 ms linger: dispatch latency matters more than
  // batching), having produced what an earlier run left in it.
  static Result<std::unique_ptr<OutboxPublisher>> Open(const KafkaOptions& kafka, const std::string& bootstrap,
                                                       const std::string& client_id, storage::Store* store,
                                                       MetricsRegistry* metrics);
  // Produces everything still in the store's outbox (left by an earlier run).
  Status RepublishPending();
  Status Publish(std::vector<storage::OutboxRecord>&& records);
  // Serves delivery reports, re-produces failures, deletes acknowledged records.
  Status Poll(int timeout_ms);
  // Waits until every record is acknowledged and deleted, or timeout.
  Status Drain(int timeout_ms);
  size_t in_flight() const { return in_flight_.size(); }

 private:
  OutboxPublisher(storage::Store* store, MetricsRegistry* metrics);
  Status Produce(const storage::OutboxRecord& r);
  // Produces r, or keeps it in unsent_ when the producer refuses it for now.
  Status ProduceOrHold(const storage::OutboxRecord& r);
  // Produces what unsent_ holds once the backoff has passed.
  Status RetryUnsent();

  storage::Store* store_;
  std::unique_ptr<ingest::KafkaProducer> producer_;
  std::map<uint64_t, storage::OutboxRecord> in_flight_;  // produced or unsent, not yet acknowledged
  std::set<uint64_t> unsent_;                             // in in_flight_, refused by the producer for now
  std::chrono::steady_clock::time_point retry_at_{};
  std::chrono::milliseconds backoff_{0};
  std::mutex reports_mu_;  // delivery callbacks run inside producer Poll, on this thread; kept for safety
  std::vector<uint64_t> acked_;
  std::vector<uint64_t> failed_;
  Counter* published_;
  Counter* failures_;
  Gauge* pending_;
};

}  // namespace cityloop::app
