#include "app/pipeline.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <charconv>
#include <nlohmann/json.hpp>

#include "app/fault_points.h"
#include "app/shard_router.h"
#include "core/case_json.h"
#include "core/json_writer.h"
#include "core/time_util.h"

namespace cityloop::app {
namespace {

constexpr const char* kMetaCaseSeq = "case_seq";
constexpr const char* kMetaOutboxSeq = "outbox_seq";
constexpr std::string_view kDevicePrefix = "dev/";

uint64_t ParseU64(const std::optional<std::string>& s, uint64_t fallback) {
  if (!s) return fallback;
  uint64_t v = 0;
  auto r = std::from_chars(s->data(), s->data() + s->size(), v);
  return r.ec == std::errc() ? v : fallback;
}

}  // namespace

Pipeline::Pipeline(std::shared_ptr<const CityModel> city, storage::Store* store, const Clock& clock,
                   MetricsRegistry* metrics, bool live)
    : city_(std::move(city)),
      store_(store),
      clock_(clock),
      metrics_(metrics),
      decoder_(city_),
      report_decoder_(city_),
      detection_decoder_(city_),
      frame_decoder_(city_),
      unit_decoder_(city_),
      command_decoder_(city_),
      live_(live),
      rules_(city_, live),
      cases_(city_) {
  messages_ = &metrics_->GetCounter("cityloop_ingest_messages_total", "Input messages read from Kafka");
  accepted_ = &metrics_->GetCounter("cityloop_ingest_accepted_total", "Input messages that passed validation");
  unknown_kind_ = &metrics_->GetCounter("cityloop_readings_unknown_kind_total",
                                        "Readings of a sensor kind no rule or registry knows (stored, not evaluated)");
  signals_ = &metrics_->GetCounter("cityloop_signals_total", "Signals raised by detectors");
  late_ = &metrics_->GetCounter("cityloop_late_events_total",
                                "Inputs older than their partition's watermark (dropped or applied, see event_time)");
  batches_ = &metrics_->GetCounter("cityloop_batches_total", "Micro-batches written to the store");
  batch_ms_ = &metrics_->GetHistogram("cityloop_batch_process_ms", "Time to process and write one micro-batch (ms)",
                                      {0.5, 1, 2, 5, 10, 20, 50, 100, 250, 1000});
  snapshots_stored_ = &metrics_->GetCounter("cityloop_camera_snapshots_stored_total",
                                            "Camera event snapshots (best, final, annotated) written to the store");
  snapshots_deleted_ = &metrics_->GetCounter("cityloop_camera_snapshots_deleted_total",
                                             "Camera snapshots removed by retention (camera.snapshots)");
  camera_memory_ = &metrics_->GetGauge("cityloop_camera_memory_bytes", "Heap held by camera frame analytics");
  camera_recalibrations_ = &metrics_->GetGauge(
      "cityloop_camera_recalibrations", "Light changes that made a camera re-learn its background (since start)");
  for (const char* outcome : {"analysed", "skipped_rate", "skipped_old", "overload", "rejected"}) CountFrame(outcome, 0);
  open_cases_ = &metrics_->GetGauge("cityloop_cases_open", "Cases not yet closed, invalidated or merged");
  resident_cases_ = &metrics_->GetGauge("cityloop_cases_in_memory", "Cases held in memory: the open and the recently settled");
  evicted_cases_ = &metrics_->GetCounter("cityloop_cases_evicted_total",
                                         "Settled cases dropped from memory (read back from the store when needed)");
  // A settled case leaves memory after a while (Commit); a command or a
  // relapse that needs it again reads it back from here.
  cases_.SetLoader([this](const std::string& id) -> std::optional<Case> {
    auto text = store_->GetCase(id);
    if (!text.ok()) {
      spdlog::error("case {}: reading it back from the store failed: {}", id, text.status().ToString());
      return std::nullopt;
    }
    if (!*text) return std::nullopt;  // never stored: an unknown case
    auto c = ParseCaseJson(**text);
    if (!c.ok()) {
      spdlog::error("case {}: the stored case does not parse: {}", id, c.status().ToString());
      return std::nullopt;
    }
    return std::move(c).value();
  });
}

// outcome: analysed | skipped_rate (over camera.fps) | skipped_old (out of
// order) | overload (live, more than camera.max_lag behind) | rejected (DLQ).
void Pipeline::CountFrame(const char* outcome, int64_t n) {
  metrics_->GetCounter("cityloop_camera_frames_total", "Camera frames by what became of them", {{"outcome", outcome}})
      .Inc(n);
}

Status Pipeline::Restore() {
  size_t restored = 0;
  Status bad;
  // Units first: restored cases re-assign their units.
  CL_RETURN_IF_ERROR(store_->ForEachState(dispatch::UnitTracker::kStatePrefix, [&](std::string_view k, std::string_view v) {
    bad = cases_.units().Restore(k, v);
    return bad.ok();
  }));
  CL_RETURN_IF_ERROR(bad);
  CL_RETURN_IF_ERROR(store_->ForEachCase([&](std::string_view id, std::string_view json) {
    auto c = ParseCaseJson(json);
    if (!c.ok()) {
      bad = Status::DataLoss("case " + std::string(id) + ": " + c.status().message());
      return false;
    }
    cases_.Restore(std::move(c).value());
    ++restored;
    return true;
  }));
  CL_RETURN_IF_ERROR(bad);
  const int64_t now = clock_.now_ms();
  for (const std::string& prefix : detect::RuleSet::StatePrefixes()) {
    CL_RETURN_IF_ERROR(store_->ForEachState(prefix, [&](std::string_view k, std::string_view v) {
      bad = rules_.Restore(k, v, now);
      return bad.ok();
    }));
    CL_RETURN_IF_ERROR(bad);
  }
  auto case_seq = store_->GetMeta(kMetaCaseSeq);
  auto outbox_seq = store_->GetMeta(kMetaOutboxSeq);
  if (!case_seq.ok()) return case_seq.status();
  if (!outbox_seq.ok()) return outbox_seq.status();
  cases_.RestoreCaseSequence(ParseU64(*case_seq, 1));
  next_outbox_seq_ = ParseU64(*outbox_seq, 1);
  spdlog::info("restored {} cases ({} open); next case number {}, next outbox seq {}", restored,
               cases_.open_count(), cases_.next_case_number(), next_outbox_seq_);
  return Status::Ok();
}

void Pipeline::AddOutbox(std::string topic, std::string key, std::string value, ingest::Headers headers) {
  storage::OutboxRecord r;
  r.seq = ShardSequence(next_outbox_seq_++, shard_);
  r.topic = std::move(topic);
  r.key = std::move(key);
  r.value = std::move(value);
  r.headers = std::move(headers);
  outbox_.push_back(std::move(r));
}

void Pipeline::DeadLetter(const ingest::Message& m, const ingest::Rejection& why) {
  if (m.header(kCopyHeader) != nullptr) return;
  metrics_->GetCounter("cityloop_ingest_rejected_total", "Input messages rejected to the dead-letter topic",
                       {{"reason", why.reason}, {"topic", m.topic}})
      .Inc();
  ingest::Headers headers{{"x-source-topic", m.topic},
                          {"x-source-partition", std::to_string(m.partition)},
                          {"x-source-offset", std::to_string(m.offset)},
                          {"x-error", why.ToString()},
                          {"x-error-code", why.reason}};
  // A record bigger than this may exceed the cluster's message.max.bytes and
  // block the outbox: big values (camera frames) are dead-lettered without
  // their bytes, which stay in the source topic at the offset given.
  constexpr size_t kMaxDeadLetterValue = 256 * 1024;
  if (m.value.size() > kMaxDeadLetterValue) {
    headers.emplace_back("x-value-omitted-bytes", std::to_string(m.value.size()));
    AddOutbox(city_->config().kafka.topics.dlq, m.key, {}, std::move(headers));
    return;
  }
  AddOutbox(city_->config().kafka.topics.dlq, m.key, m.value, std::move(headers));
}

bool Pipeline::Admitted(detect::Admission a, const ingest::Message& m, int64_t ts_ms) {
  if (a == detect::Admission::kOnTime) return true;
  late_->Inc();
  if (a == detect::Admission::kLateApplied) return true;
  DeadLetter(m, {"late_event", "event time " + FormatRfc3339Ms(ts_ms) + " is older than the partition's watermark " +
                                   FormatRfc3339Ms(rules_.time().WatermarkOf(m.topic, m.partition)) +
                                   " (event_time.allowed_lateness)"});
  return false;
}

void Pipeline::HandleSensor(const ingest::Message& m, int64_t now, std::vector<Signal>* signals) {
  auto outcome = decoder_.Decode(m.value, now);
  if (auto* why = std::get_if<ingest::Rejection>(&outcome)) {
    DeadLetter(m, *why);
    return;
  }
  Reading& r = std::get<Reading>(outcome);
  r.input = {m.topic, m.partition, m.offset};
  r.ingest_ms = now;
  if (!Admitted(rules_.OnReading(r, now, signals), m, r.ts_ms)) return;
  accepted_->Inc();
  if (!city_->FindSensorKind(r.kind)) unknown_kind_->Inc();
  Reading& latest = device_latest_[r.device_id];
  if (r.ts_ms >= latest.ts_ms) latest = std::move(r);
}

void Pipeline::HandleReport(const ingest::Message& m, int64_t now, std::vector<Signal>* signals) {
  auto outcome = report_decoder_.Decode(m.value, now);
  if (auto* why = std::get_if<ingest::Rejection>(&outcome)) {
    DeadLetter(m, *why);
    return;
  }
  Report& rep = std::get<Report>(outcome);
  rep.input = {m.topic, m.partition, m.offset};
  rep.ingest_ms = now;
  if (Admitted(rules_.OnReport(rep, now, signals), m, rep.ts_ms)) accepted_->Inc();
}

void Pipeline::HandleDetections(const ingest::Message& m, int64_t now, std::vector<Signal>* signals) {
  auto outcome = detection_decoder_.Decode(m.value, now);
  if (auto* why = std::get_if<ingest::Rejection>(&outcome)) {
    DeadLetter(m, *why);
    return;
  }
  CameraDetections& d = std::get<CameraDetections>(outcome);
  d.input = {m.topic, m.partition, m.offset};
  d.ingest_ms = now;
  if (Admitted(rules_.OnDetections(d, now, signals), m, d.ts_ms)) accepted_->Inc();
}

void Pipeline::HandleFrame(const ingest::Message& m, int64_t now, std::vector<Signal>* signals) {
  auto outcome = frame_decoder_.Decode(m, now);
  if (auto* why = std::get_if<ingest::Rejection>(&outcome)) {
    CountFrame("rejected", 1);
    DeadLetter(m, *why);
    return;
  }
  CameraFrame& f = std::get<CameraFrame>(outcome);
  f.input = {m.topic, m.partition, m.offset};
  f.ingest_ms = now;
  if (live_ && now - f.ts_ms > city_->config().camera.max_lag_ms) {
    // Overload: analysis fell behind. The oldest frames go, so the newest
    // are seen in time; replay never drops.
    CountFrame("overload", 1);
    return;
  }
  detect::camera::FrameResult r;
  if (!Admitted(rules_.OnFrame(f, now, signals, &r), m, f.ts_ms)) return;
  switch (r.outcome) {
    case detect::camera::FrameOutcome::kAnalysed: CountFrame("analysed", 1); break;
    case detect::camera::FrameOutcome::kSkippedRate: CountFrame("skipped_rate", 1); break;
    case detect::camera::FrameOutcome::kSkippedOld: CountFrame("skipped_old", 1); break;
    case detect::camera::FrameOutcome::kRejected:
      CountFrame("rejected", 1);
      DeadLetter(m, {r.reason, r.detail});
      return;
  }
  accepted_->Inc();
}

void Pipeline::HandleUnit(const ingest::Message& m, int64_t now, std::vector<Signal>* signals) {
  auto outcome = unit_decoder_.Decode(m.value, now);
  if (auto* why = std::get_if<ingest::Rejection>(&outcome)) {
    DeadLetter(m, *why);
    return;
  }
  UnitUpdate& u = std::get<UnitUpdate>(outcome);
  u.input = {m.topic, m.partition, m.offset};
  u.ingest_ms = now;
  rules_.Observe(u.input, u.ts_ms, now, signals);  // applied even when late: the tracker orders by event time
  const std::string why = cases_.OnUnitUpdate(u, &effects_);
  if (why == "unknown_unit" || why == "department_mismatch") {
    DeadLetter(m, {why, why == "unknown_unit" ? "no unit " + u.unit_id + " in city.units"
                                              : "unit " + u.unit_id + " is not of department " + u.department});
    return;
  }
  metrics_->GetCounter("cityloop_unit_updates_total", "city.units reports by outcome",
                       {{"outcome", why.empty() ? "applied" : why}})
      .Inc();
  accepted_->Inc();
}

void Pipeline::HandleCommand(const ingest::Message& m, int64_t now, std::vector<Signal>* signals) {
  auto outcome = command_decoder_.Decode(m.value, now);
  if (auto* why = std::get_if<ingest::Rejection>(&outcome)) {
    DeadLetter(m, *why);
    return;
  }
  Command& cmd = std::get<Command>(outcome);
  cmd.input = {m.topic, m.partition, m.offset};
  cmd.ingest_ms = now;
  // Operator actions always apply, in log order, however late their time.
  rules_.Observe(cmd.input, cmd.ts_ms, now, signals);
  const std::string rejected = cases_.OnCommand(cmd, &effects_);
  metrics_->GetCounter("cityloop_commands_total", "Operator commands by action and outcome (rejected: by reason)",
                       {{"action", CaseActionName(cmd.action)}, {"outcome", rejected.empty() ? "applied" : "rejected"},
                        {"reason", rejected}})
      .Inc();
  accepted_->Inc();
}

void Pipeline::AfterInput(const std::vector<Signal>& signals) {
  ToCases(signals);
  recoveries_.clear();
  rules_.TakeRecoveries(&recoveries_);
  for (const Recovery& r : recoveries_) cases_.OnRecovery(r, &effects_);
  cases_.AdvanceTo(rules_.time().MaxWatermark(), &effects_);
  // Into the outbox now, after this input's dead letters: the publishing
  // order then does not depend on where batches happen to end.
  for (auto& r : effects_.records) AddOutbox(std::move(r.topic), std::move(r.key), std::move(r.value));
  effects_.records.clear();
}

void Pipeline::EvictSettledCases() {
  // Swept once a minute of event time, after the write: every case is then in
  // the store as in memory. Kept an hour at least, and while a relapse can
  // still reopen them: those are the cases commands and relapses come for.
  constexpr int64_t kSweepEveryMs = 60000;
  const int64_t watermark = cases_.time_ms();
  if (last_eviction_ms_ != std::numeric_limits<int64_t>::min() && watermark - last_eviction_ms_ < kSweepEveryMs) return;
  last_eviction_ms_ = watermark;
  const int64_t keep_ms = std::max<int64_t>(3600000, city_->config().dispatch.relapse_within_ms);
  evicted_cases_->Inc(static_cast<int64_t>(cases_.EvictSettled(keep_ms)));
  resident_cases_->Set(static_cast<double>(cases_.case_count()));
}

void Pipeline::PublishCaseStats() {
  const dispatch::CaseEngineStats& s = cases_.stats();
  auto publish = [&](const char* name, const char* help, int64_t now, int64_t& was) {
    if (now != was) metrics_->GetCounter(name, help).Inc(now - was);
    was = now;
  };
  publish("cityloop_sla_warnings_total", "SLA yellow lights and unit lateness warnings (city.case.sla_warning)",
          s.sla_warnings, published_.sla_warnings);
  publish("cityloop_sla_breaches_total", "SLA red lights (city.case.sla_breached)", s.sla_breaches,
          published_.sla_breaches);
  publish("cityloop_escalations_total", "Escalations (reminder, supervision, escalation, forced)", s.escalations,
          published_.escalations);
  publish("cityloop_dispatch_ping_pong_total", "Cases returned back and forth between the same two departments",
          s.ping_pongs, published_.ping_pongs);
  publish("cityloop_cases_auto_verified_total", "Cases closed by sensor-backed verification", s.auto_verified,
          published_.auto_verified);
  publish("cityloop_cases_relapsed_total", "Sensor-verified cases reopened by a relapse", s.relapses,
          published_.relapses);
  open_cases_->Set(static_cast<double>(cases_.open_count()));
}

void Pipeline::ToCases(const std::vector<Signal>& signals) {
  for (const Signal& s : signals) {
    metrics_->GetCounter("cityloop_signals_total", "Signals raised by detectors", {{"source", SignalSourceName(s.source)}})
        .Inc();
    // Rules with opens_case: false only feed correlations.
    if (s.opens_case) cases_.OnSignal(s, &effects_);
  }
}

std::string Pipeline::DeviceLatestJson(const Reading& r) {
  JsonWriter w;
  w.BeginObject(JsonWriter::Order::kSorted);
  w.Field("cell", r.cell);
  w.Field("input", r.input.ToString());
  w.Field("kind", r.kind);
  w.Field("lat", r.position.lat);
  w.Field("lon", r.position.lon);
  w.Field("registered", r.registered);
  w.Field("ts", r.ts_ms);
  w.Field("unit", r.unit);
  w.Field("value", r.value);
  w.EndObject();
  return w.Take();
}

Status Pipeline::Process(const std::vector<ingest::Message>& batch, BatchResult* result,
                         std::span<const int64_t> ingest_ms, std::span<const ingest::PartitionOffset> also_store) {
  CL_CHECK(ingest_ms.empty() || ingest_ms.size() == batch.size());
  const auto started = std::chrono::steady_clock::now();
  outbox_.clear();
  device_latest_.clear();
  effects_.Clear();
  std::map<storage::TopicPartition, int64_t> next_offsets;
  std::vector<Signal> signals;
  const auto& topics = city_->config().kafka.topics;
  // Live, one ingest time for the batch: it was read from Kafka in one poll.
  // Replay gives each message the time it was read when recorded.
  last_ingest_ms_ = clock_.now_ms();
  messages_->Inc(static_cast<int64_t>(batch.size()));

  int64_t* partition_next = nullptr;  // next offset of the previous message's partition
  const ingest::Message* prev = nullptr;
  for (size_t i = 0; i < batch.size(); ++i) {
    const ingest::Message& m = batch[i];
    const int64_t now = ingest_ms.empty() ? last_ingest_ms_ : ingest_ms[i];
    if (!prev || prev->partition != m.partition || prev->topic != m.topic) {
      partition_next = &next_offsets[{m.topic, m.partition}];
    }
    prev = &m;
    *partition_next = std::max(*partition_next, m.offset + 1);
    signals.clear();
    if (m.topic == topics.sensors) {
      HandleSensor(m, now, &signals);
    } else if (m.topic == topics.reports) {
      HandleReport(m, now, &signals);
    } else if (m.topic == topics.camera_detections) {
      HandleDetections(m, now, &signals);
    } else if (m.topic == topics.camera_frames) {
      HandleFrame(m, now, &signals);
    } else if (m.topic == topics.units) {
      HandleUnit(m, now, &signals);
    } else if (m.topic == topics.commands) {
      HandleCommand(m, now, &signals);
    } else {
      DeadLetter(m, {"unsupported_topic", "this engine does not consume " + m.topic + " yet"});
    }
    AfterInput(signals);
  }
  for (const auto& o : also_store) next_offsets[{o.topic, o.partition}] = o.next_offset;
  CL_RETURN_IF_ERROR(Commit(next_offsets, result));
  batch_ms_->Observe(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started).count());
  return Status::Ok();
}

Status Pipeline::Tick(BatchResult* result, bool* advanced) {
  result->Clear();
  outbox_.clear();
  device_latest_.clear();
  effects_.Clear();
  std::vector<Signal> signals;
  last_ingest_ms_ = clock_.now_ms();
  const bool moved = rules_.Tick(last_ingest_ms_, &signals);
  if (advanced) *advanced = moved;
  AfterInput(signals);
  // Moved watermarks alone are persisted with the next batch.
  if (signals.empty() && effects_.changed_cases.empty() && outbox_.empty()) return Status::Ok();
  return Commit({}, result);
}

detect::ReloadSummary Pipeline::ReloadRules(std::shared_ptr<const CityModel> city) {
  city_ = city;
  cases_.SetCity(city);
  return rules_.Reload(std::move(city));
}

Status Pipeline::Commit(const std::map<storage::TopicPartition, int64_t>& next_offsets, BatchResult* result) {
  storage::WriteBatch wb = store_->NewBatch();
  std::sort(effects_.changed_cases.begin(), effects_.changed_cases.end());
  effects_.changed_cases.erase(std::unique(effects_.changed_cases.begin(), effects_.changed_cases.end()),
                               effects_.changed_cases.end());
  for (const std::string& id : effects_.changed_cases) {
    const Case* c = cases_.Find(id);
    CL_CHECK(c != nullptr);
    wb.PutCase(id, CaseJsonText(*c));
  }
  for (const std::string& id : effects_.opened_cases) {
    const Case* c = cases_.Find(id);
    metrics_->GetCounter("cityloop_cases_opened_total", "Cases opened",
                         {{"category", c->category}, {"department", c->department}, {"district", c->district}})
        .Inc();
    if (c->status == CaseStatus::kDetected) {
      spdlog::info("case {} opened: {} ({}) in {} [{}], awaiting confirmation ({})", c->id, c->category,
                   PriorityName(c->priority), c->district, c->cell_code, c->department);
      continue;
    }
    spdlog::info("case {} opened: {} ({}) in {} [{}], dispatched to {}{}", c->id, c->category,
                 PriorityName(c->priority), c->district, c->cell_code, c->department,
                 c->recommended_unit.empty() ? "" : ", unit " + c->recommended_unit);
  }
  for (const auto& a : effects_.audit) wb.PutAudit(a.case_id, a.seq, a.json);
  const auto& topics = city_->config().kafka.topics;
  for (const auto& r : outbox_) {
    wb.PutOutbox(r);
    // The event log behind the console's live stream (resume by Last-Event-ID).
    if (r.topic == topics.cases || r.topic == topics.dispatch) wb.PutEvent(r.seq, r.topic, r.value);
  }
  // Trimmed now and then, not per batch: each trim is a range tombstone.
  const uint64_t retention = static_cast<uint64_t>(std::max<int64_t>(1, city_->config().api.stream_retention));
  const uint64_t keep_from = next_outbox_seq_ > retention ? ShardSequence(next_outbox_seq_ - retention, shard_) : 0;
  if (keep_from >= events_trimmed_to_ + retention / 10) {
    events_trimmed_to_ = keep_from;
    wb.DeleteEventsBefore(events_trimmed_to_);
  }
  state_.clear();
  rules_.TakeDirty(&state_);
  for (const auto& e : state_) {
    if (e.value) wb.PutState(e.key, *e.value);
    else wb.DeleteState(e.key);
  }
  detect::camera::CameraAnalytics& cameras = rules_.camera();
  for (const auto& snap : cameras.TakeSnapshots()) {
    wb.PutSnapshot(snap.id, snap.jpeg);
    snapshots_stored_->Inc();
  }
  for (const auto& id : cameras.TakeDroppedSnapshots()) {
    wb.DeleteSnapshot(id);
    snapshots_deleted_->Inc();
  }
  camera_memory_->Set(static_cast<double>(cameras.MemoryBytes()));
  camera_recalibrations_->Set(static_cast<double>(cameras.recalibrations()));
  unit_state_.clear();
  cases_.units().TakeDirty(&unit_state_);
  for (const auto& [k, v] : unit_state_) wb.PutState(k, v);
  PublishCaseStats();
  for (const auto& [device, r] : device_latest_) wb.PutState(std::string(kDevicePrefix) + device, DeviceLatestJson(r));
  for (const auto& [tp, next] : next_offsets) wb.PutOffset(tp, next);
  wb.PutMeta(kMetaCaseSeq, std::to_string(cases_.next_case_number()));
  wb.PutMeta(kMetaOutboxSeq, std::to_string(next_outbox_seq_));

  FaultPoint("before_write");
  CL_RETURN_IF_ERROR(store_->Write(std::move(wb)));
  FaultPoint("after_write");
  batches_->Inc();
  EvictSettledCases();
  result->Clear();
  result->outbox = std::move(outbox_);
  outbox_.clear();
  for (const auto& [tp, next] : next_offsets) result->offsets.push_back({tp.topic, tp.partition, next});
  return Status::Ok();
}

}  // namespace cityloop::app
