// Pipeline: the deterministic core of the engine, shared by the streaming
// service and replay. One micro-batch of input messages goes in; decoding and
// validation (bad input -> dead-letter record), event time and detection
// (detect::RuleSet), case merging and routing run; and everything the batch
// changed — cases, audit entries, outbox records (events, dispatch orders,
// dead letters), rule state, event time and the input offsets — is written
// in ONE atomic RocksDB WriteBatch.
// Owned and called by one engine thread.
#pragma once

#include <cstdint>
#include <limits>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/city.h"
#include "core/clock.h"
#include "core/metrics.h"
#include "detect/rule_set.h"
#include "dispatch/case_engine.h"
#include "ingest/kafka.h"
#include "ingest/command_decoder.h"
#include "ingest/detection_decoder.h"
#include "ingest/frame_decoder.h"
#include "ingest/report_decoder.h"
#include "ingest/sensor_decoder.h"
#include "ingest/unit_decoder.h"
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
  // live: event time also moves on from the wall clock when input is idle
  // (the streaming service); false for replay, which runs on the log alone.
  Pipeline(std::shared_ptr<const CityModel> city, storage::Store* store, const Clock& clock,
           MetricsRegistry* metrics, bool live = true);

  // Loads cases, detector state and counters from the store. Call once, first.
  Status Restore();
  // Processes batch and writes it atomically; on success fills `result`.
  // On failure the in-memory state is ahead of the store: the caller must
  // stop and restart from the store.
  // ingest_ms: when each message was read (replay: as recorded); empty means
  // all of them now, by the clock.
  // also_store: further offsets to write with the batch (a shard's position
  // in the work topic, whose messages carry their source's coordinates).
  Status Process(const std::vector<ingest::Message>& batch, BatchResult* result,
                 std::span<const int64_t> ingest_ms = {}, std::span<const ingest::PartitionOffset> also_store = {});
  // This pipeline is one shard of several (scale.shards): case ids name it,
  // and the copies of broadcast inputs (header x-cityloop-copy) are applied
  // but never dead-lettered (their home shard does that once). Call before Restore.
  // Outbox seqs (and so the console's event ids) are shared the same way.
  void SetShard(ShardSpec shard) {
    shard_ = shard;
    cases_.SetShard(shard);
  }
  // Live mode, between polls: advances idle sources' event time and writes
  // what that raised (silent devices, closed windows). Leaves `result` empty
  // when nothing changed. *advanced: whether any event time moved (a
  // recording keeps only those ticks: the others change nothing).
  Status Tick(BatchResult* result, bool* advanced = nullptr);
  // The clock reading the last Process (for all its messages) or Tick used.
  int64_t last_ingest_ms() const { return last_ingest_ms_; }
  // The KPI book as of the last batch (engine thread only; copy to share).
  const dispatch::KpiBook& kpi() const { return cases_.kpi(); }
  dispatch::CaseEngine::Census census() const { return cases_.TakeCensus(); }

  // Swaps in the rules (and merge settings) of city, whose city section must
  // equal the running one. Unchanged rules keep their state.
  detect::ReloadSummary ReloadRules(std::shared_ptr<const CityModel> city);

 private:
  void HandleSensor(const ingest::Message& m, int64_t now_ms, std::vector<Signal>* signals);
  void HandleReport(const ingest::Message& m, int64_t now_ms, std::vector<Signal>* signals);
  void HandleDetections(const ingest::Message& m, int64_t now_ms, std::vector<Signal>* signals);
  void HandleFrame(const ingest::Message& m, int64_t now_ms, std::vector<Signal>* signals);
  void HandleUnit(const ingest::Message& m, int64_t now_ms, std::vector<Signal>* signals);
  void HandleCommand(const ingest::Message& m, int64_t now_ms, std::vector<Signal>* signals);
  // After each input: signals to cases, ended alarms, then what falls due by the watermark.
  void AfterInput(const std::vector<Signal>& signals);
  // Moves the case engine's counters into /metrics.
  void PublishCaseStats();
  // Drops long-settled cases from memory (dispatch::CaseEngine::EvictSettled), now and then.
  void EvictSettledCases();
  void CountFrame(const char* outcome, int64_t n);
  // Counts and, when dropped, dead-letters an input that came too late.
  bool Admitted(detect::Admission a, const ingest::Message& m, int64_t ts_ms);
  void ToCases(const std::vector<Signal>& signals);
  // Writes the batch's changes (with next_offsets) and fills result.
  Status Commit(const std::map<storage::TopicPartition, int64_t>& next_offsets, BatchResult* result);
  static std::string DeviceLatestJson(const Reading& r);
  void DeadLetter(const ingest::Message& m, const ingest::Rejection& why);
  void AddOutbox(std::string topic, std::string key, std::string value, ingest::Headers headers = {});

  std::shared_ptr<const CityModel> city_;
  storage::Store* store_;
  const Clock& clock_;
  MetricsRegistry* metrics_;
  ingest::SensorDecoder decoder_;
  ingest::ReportDecoder report_decoder_;
  ingest::DetectionDecoder detection_decoder_;
  ingest::FrameDecoder frame_decoder_;
  ingest::UnitDecoder unit_decoder_;
  ingest::CommandDecoder command_decoder_;
  bool live_;
  detect::RuleSet rules_;
  dispatch::CaseEngine cases_;
  ShardSpec shard_;
  uint64_t next_outbox_seq_ = 1;  // counts this shard's records; the seq is ShardSequence(n, shard_)
  int64_t last_ingest_ms_ = 0;
  uint64_t events_trimmed_to_ = 0;  // event log records below this seq are deleted
  int64_t last_eviction_ms_ = std::numeric_limits<int64_t>::min();  // event time of the last sweep of settled cases

  // Per-batch scratch, reused.
  std::vector<storage::OutboxRecord> outbox_;
  std::unordered_map<std::string, Reading> device_latest_;  // device id -> newest reading of the batch
  dispatch::Effects effects_;
  std::vector<detect::StateEntry> state_;
  std::vector<Recovery> recoveries_;
  std::vector<std::pair<std::string, std::string>> unit_state_;
  dispatch::CaseEngineStats published_;  // case stats already counted in /metrics

  Counter* messages_;
  Counter* accepted_;
  Counter* unknown_kind_;
  Counter* signals_;
  Counter* late_;
  Counter* batches_;
  Histogram* batch_ms_;
  Counter* snapshots_stored_;
  Counter* snapshots_deleted_;
  Gauge* camera_memory_;
  Gauge* camera_recalibrations_;
  Gauge* open_cases_;
  Gauge* resident_cases_;
  Counter* evicted_cases_;
};

}  // namespace cityloop::app
