// OutboxPublisher: moves outbox records from RocksDB to Kafka. Records are
// produced in seq order after their batch is durable; a record is deleted from
// the store only once Kafka acknowledged it, and one that failed is produced
// again. On start, whatever a previous run left in the outbox is sent first —
// so a crash can resend (same CloudEvents id), never lose.
// Called from the engine thread only.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <vector>

#include "core/metrics.h"
#include "ingest/kafka.h"
#include "storage/store.h"

namespace cityloop::app {

class OutboxPublisher {
 public:
  static Result<std::unique_ptr<OutboxPublisher>> Create(const ingest::ProducerOptions& options,
                                                         storage::Store* store, MetricsRegistry* metrics);
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

  storage::Store* store_;
  std::unique_ptr<ingest::KafkaProducer> producer_;
  std::map<uint64_t, storage::OutboxRecord> in_flight_;
  std::mutex reports_mu_;  // delivery callbacks run inside producer Poll, on this thread; kept for safety
  std::vector<uint64_t> acked_;
  std::vector<uint64_t> failed_;
  Counter* published_;
  Counter* failures_;
  Gauge* pending_;
};

}  // namespace cityloop::app
