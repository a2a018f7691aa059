// Pipeline: the deterministic core of the engine, shared by the streaming
// service and replay. One micro-batch of input messages goes in; decoding and
// validation (bad input -> dead-letter record), threshold detection, case
// merging and routing run; and everything the batch changed — cases, audit
// entries, outbox records (events, dispatch orders, dead letters), detector
// state and the input offsets — is written in ONE atomic RocksDB WriteBatch.
// Owned and called by one engine thread.
#pragma once

#include <cstdint>
#include <map>
#include <unordered_map>
#include <memory>
#include <string>
#include <vector>

#include "core/city.h"
#include "core/clock.h"
#include "core/metrics.h"
#include "detect/threshold_detector.h"
#include "dispatch/case_engine.h"
#include "ingest/kafka.h"
#include "ingest/sensor_decoder.h"
#include "storage/store.h"

namespace cityloop::app {

// What a written batch leaves for the engine to do.
struct BatchResult {
  std::vector<storage::OutboxRecord> outbox;     // to publish, in seq order
  std::vector<ingest::PartitionOffset> offsets;  // to commit to Kafka
  void Clear() {
    outbox.clear();
    offsets.clear();
  }
};

class Pipeline {
 public:
  Pipeline(std::shared_ptr<const CityModel> city, storage::Store* store, const Clock& clock,
           MetricsRegistry* metrics);

  // Loads cases, detector state and counters from the store. Call once, first.
  Status Restore();
  // Processes batch and writes it atomically; on success fills `result`.
  // On failure the in-memory state is ahead of the store: the caller must
  // stop and restart from the store.
  Status Process(const std::vector<ingest::Message>& batch, BatchResult* result);

 private:
  void HandleSensor(const ingest::Message& m, int64_t now_ms, std::vector<Signal>* signals);
  static std::string DeviceLatestJson(const Reading& r);
  void DeadLetter(const ingest::Message& m, const ingest::Rejection& why);
  void AddOutbox(std::string topic, std::string key, std::string value, ingest::Headers headers = {});

  std::shared_ptr<const CityModel> city_;
  storage::Store* store_;
  const Clock& clock_;
  MetricsRegistry* metrics_;
  ingest::SensorDecoder decoder_;
  detect::ThresholdDetector detector_;
  dispatch::CaseEngine cases_;
  uint64_t next_outbox_seq_ = 1;

  // Per-batch scratch, reused.
  std::vector<storage::OutboxRecord> outbox_;
  std::unordered_map<std::string, Reading> device_latest_;  // device id -> newest reading of the batch
  dispatch::Effects effects_;

  Counter* messages_;
  Counter* accepted_;
  Counter* unknown_kind_;
  Counter* signals_;
  Counter* batches_;
  Histogram* batch_ms_;
};

}  // namespace cityloop::app
