#include "app/engine.h"

#include <spdlog/spdlog.h>

#include <chrono>

#include "app/fault_points.h"
#include "core/case_json.h"

namespace cityloop::app {

Engine::~Engine() {
  if (consumer_) consumer_->Close();
}

std::vector<std::shared_ptr<const storage::Store>> Engine::stores() const {
  if (!shards_) return {store_};
  auto out = shards_->stores();
  for (auto& replica : replicas_->stores(shards_->owned())) out.push_back(std::move(replica));
  return out;
}

Status Engine::CreateShards(const std::string& bootstrap) {
  const Config& cfg = city_->config();
  if (!options_.record_dir.empty()) {
    return Status::InvalidArgument("run --record records one engine's input: it needs scale.shards: 0 "
                                   "(record the input topics with `cityloop record` instead)");
  }
  auto router = ShardRouter::Create(city_, bootstrap, metrics_);
  if (!router.ok()) return router.status();
  router_ = std::move(router).value();
  ShardHost::Options so;
  so.bootstrap = bootstrap;
  so.storage_path = options_.store_path.empty() ? cfg.storage.path : options_.store_path;
  so.max_in_flight = options_.max_in_flight;
  so.hub = options_.hub;
  auto host = ShardHost::Create(city_, so, *clock_, metrics_);
  if (!host.ok()) return host.status();
  shards_ = std::move(host).value();
  auto replicas = ShardReplicas::Create(city_, bootstrap, so.storage_path, metrics_);
  if (!replicas.ok()) return replicas.status();
  replicas_ = std::move(replicas).value();
  return Status::Ok();
}

Result<std::unique_ptr<Engine>> Engine::Create(std::shared_ptr<const CityModel> city, const EngineOptions& options,
                                               const Clock& clock, MetricsRegistry* metrics) {
  std::unique_ptr<Engine> e(new Engine());
  e->city_ = city;
  e->options_ = options;
  e->metrics_ = metrics;
  e->clock_ = &clock;
  e->poll_ms_ = &metrics->GetHistogram("cityloop_poll_ms", "Time one Kafka poll for a micro-batch took (ms)",
                                       {0.1, 0.5, 1, 2, 5, 10, 20, 50});
  const Config& cfg = city->config();
  const std::string bootstrap = options.bootstrap.empty() ? cfg.kafka.bootstrap : options.bootstrap;
  const std::string path = options.store_path.empty() ? cfg.storage.path : options.store_path;

  if (cfg.scale.shards > 0) {
    CL_RETURN_IF_ERROR(e->CreateShards(bootstrap));
  } else {
  storage::StoreOptions so;
  so.sync = cfg.storage.sync_writes;
  auto store = storage::Store::Open(path, so);
  if (!store.ok()) return store.status();
  e->store_ = std::move(store).value();

  e->pipeline_ = std::make_unique<Pipeline>(city, e->store_.get(), clock, metrics, /*live=*/true);
  CL_RETURN_IF_ERROR(e->pipeline_->Restore());
  if (!options.record_dir.empty()) CL_RETURN_IF_ERROR(e->OpenRecording());

  auto publisher =
      OutboxPublisher::Open(cfg.kafka, bootstrap, cfg.kafka.client_id + "-outbox", e->store_.get(), metrics);
  if (!publisher.ok()) return publisher.status();
  e->publisher_ = std::move(publisher).value();

  ingest::ConsumerOptions co;
  co.bootstrap = bootstrap;
  co.group_id = cfg.kafka.group_id;
  co.client_id = cfg.kafka.client_id;
  co.topics = {cfg.kafka.topics.sensors,       cfg.kafka.topics.reports, cfg.kafka.topics.camera_detections,
               cfg.kafka.topics.camera_frames, cfg.kafka.topics.units,   cfg.kafka.topics.commands};
  co.properties = cfg.kafka.ConsumerProperties();
  storage::Store* st = e->store_.get();
  Engine* self = e.get();
  auto consumer = ingest::KafkaConsumer::Create(
      co,
      [st](const std::string& topic, int32_t partition) { return st->GetOffset({topic, partition}); },
      [self](bool assigned, const std::vector<ingest::PartitionOffset>& parts) {
        spdlog::info("partitions {}: {}", assigned ? "assigned" : "revoked", parts.size());
        // Not ready from a revocation until the next assignment: meanwhile nothing is consumed.
        self->ready_.store(assigned);
      });
  if (!consumer.ok()) return consumer.status();
  e->consumer_ = std::move(consumer).value();
  }
  // Partition ends: for catching up (--exit-when-caught-up) and the lag gauges.
  auto q = ingest::OffsetQuery::Create(bootstrap, cfg.kafka.properties);
  if (!q.ok()) return q.status();
  e->offsets_ = std::move(q).value();
  metrics->GetGauge("cityloop_build_info", "Always 1; the labels name the build", {{"version", CITYLOOP_VERSION}})
      .Set(1);
  e->Refresh(/*force=*/true);
  spdlog::info("engine started: bootstrap {}, store {}, group {}{}", bootstrap, path, cfg.kafka.group_id,
               cfg.scale.shards > 0 ? ", " + std::to_string(cfg.scale.shards) + " shards" : "");
  return e;
}

Status Engine::StepShards(bool* idle) {
  const auto& kafka = city_->config().kafka;
  bool router_idle = false;
  CL_RETURN_IF_ERROR(router_->Step(0, &router_idle));
  bool shards_idle = false;
  // Waits for work only when the router had none either.
  CL_RETURN_IF_ERROR(shards_->Step(router_idle ? static_cast<int>(kafka.batch_max_ms) : 0, &shards_idle));
  CL_RETURN_IF_ERROR(replicas_->Poll(0, shards_->owned(), options_.hub));
  *idle = router_idle && shards_idle;
  ready_.store(router_->assigned() && shards_->assigned());
  Refresh(false);
  return Status::Ok();
}

Status Engine::Step(bool* idle) {
  if (shards_) return StepShards(idle);
  const auto& kafka = city_->config().kafka;
  batch_.clear();
  const auto poll_start = std::chrono::steady_clock::now();
  CL_RETURN_IF_ERROR(consumer_->Poll(static_cast<size_t>(kafka.batch_max_messages),
                                     static_cast<int>(kafka.batch_max_ms), &batch_));
  poll_ms_->Observe(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - poll_start).count());
  *idle = batch_.empty();
  if (!batch_.empty()) {
    FaultPoint("after_poll");
    Status st = pipeline_->Process(batch_, &result_);
    if (!st.ok()) return Status(st.code(), "writing a batch failed (state kept as on disk): " + st.message());
    if (recorder_) Record(/*tick=*/false);
    CL_RETURN_IF_ERROR(Publish());
  } else {
    // No input: event time moves on from the wall clock (silent devices, closing windows).
    bool advanced = false;
    Status st = pipeline_->Tick(&result_, &advanced);
    if (!st.ok()) return Status(st.code(), "writing a batch failed (state kept as on disk): " + st.message());
    if (recorder_ && advanced) Record(/*tick=*/true);
    CL_RETURN_IF_ERROR(Publish());
  }
  CL_RETURN_IF_ERROR(MaybeCommit(false));
  Refresh(false);
  CL_RETURN_IF_ERROR(publisher_->Poll(0));
  // Backpressure: stop fetching while Kafka is behind on our output.
  const bool full = publisher_->in_flight() > options_.max_in_flight;
  if (full != paused_) {
    CL_RETURN_IF_ERROR(full ? consumer_->Pause() : consumer_->Resume());
    paused_ = full;
    spdlog::warn("consumption {} ({} outbox records in flight)", full ? "paused" : "resumed", publisher_->in_flight());
  }
  if (paused_) CL_RETURN_IF_ERROR(publisher_->Poll(10));
  return Status::Ok();
}

std::shared_ptr<const dispatch::KpiBook> Engine::kpi() const {
  std::lock_guard<std::mutex> lock(kpi_mu_);
  return kpi_;
}

void Engine::Refresh(bool force) {
  const auto now = std::chrono::steady_clock::now();
  if (force || now - last_kpi_ >= std::chrono::seconds(1)) {
    last_kpi_ = now;
    const bool gauges_due = force || now - last_gauges_ >= std::chrono::seconds(5);
    auto book = shards_ ? std::make_shared<const dispatch::KpiBook>(ShardedKpi(gauges_due))
                        : std::make_shared<const dispatch::KpiBook>(pipeline_->kpi());
    std::lock_guard<std::mutex> lock(kpi_mu_);
    kpi_ = std::move(book);
  }
  if (!force && now - last_gauges_ < std::chrono::seconds(5)) return;
  last_gauges_ = now;
  const dispatch::CaseEngine::Census census = shards_ ? shards_->Census() : pipeline_->census();
  for (int s = 0; s <= static_cast<int>(CaseStatus::kDeferred); ++s) {
    const auto status = static_cast<CaseStatus>(s);
    if (!CaseIsOpen(status)) continue;
    auto it = census.by_status.find(status);
    metrics_->GetGauge("cityloop_cases", "Open cases by status", {{"status", CaseStatusName(status)}})
        .Set(static_cast<double>(it == census.by_status.end() ? 0 : it->second));
  }
  for (auto [light, n] : {std::pair{"green", census.green}, {"yellow", census.yellow}, {"red", census.red}}) {
    metrics_->GetGauge("cityloop_cases_by_light", "Open cases by the worst light of their running SLA clocks",
                       {{"light", light}})
        .Set(static_cast<double>(n));
  }
  metrics_->GetGauge("cityloop_case_timers", "SLA, escalation and verification timers waiting to fire")
      .Set(static_cast<double>(census.timers));
  // Lag: how far the stored offsets are behind each assigned partition's end.
  if (!offsets_) return;
  std::vector<ingest::PartitionOffset> positions;
  std::vector<std::optional<int64_t>> ends;  // from the consumer's fetches, where it has them
  if (shards_) {
    // Sharded, the lag that matters is each owned shard's behind its work partition.
    for (const auto& [partition, next] : shards_->Positions()) {
      positions.push_back({city_->config().kafka.topics.work, partition, next});
      ends.push_back(shards_->CachedWorkEnd(partition));
    }
  } else {
    for (const auto& p : consumer_->Assignment()) {
      positions.push_back({p.topic, p.partition, store_->GetOffset({p.topic, p.partition}).value_or(0)});
      ends.push_back(consumer_->CachedHighWatermark(p.topic, p.partition));
    }
  }
  for (size_t i = 0; i < positions.size(); ++i) {
    const ingest::PartitionOffset& p = positions[i];
    // Asking the broker blocks this loop, up to the timeout per partition
    // with the broker down: only before the consumer's first fetch of it.
    Result<int64_t> high = ends[i] ? Result<int64_t>(*ends[i]) : offsets_->HighWatermark(p.topic, p.partition, 1000);
    if (!high.ok()) continue;
    const int64_t next = p.next_offset;
    metrics_->GetGauge("cityloop_ingest_lag", "Messages not yet applied, per input partition",
                       {{"topic", p.topic}, {"partition", std::to_string(p.partition)}})
        .Set(static_cast<double>(std::max<int64_t>(0, *high - next)));
  }
}

dispatch::KpiBook Engine::ShardedKpi(bool replicas_too) {
  dispatch::KpiBook book = shards_->Kpi();
  // The other shards' books, rebuilt from their replicas' cases (as a shard
  // does on start) with the gauges, every few seconds.
  if (replicas_too || !replica_kpi_) {
    auto theirs = std::make_unique<dispatch::KpiBook>(city_->config().kpi);
    theirs->set_track_dirty(false);
    const int utc_offset = city_->config().city.utc_offset_minutes;
    for (const auto& store : replicas_->stores(shards_->owned())) {
      Status st = store->ForEachCase([&](std::string_view, std::string_view text) {
        auto c = ParseCaseJson(text);
        if (c.ok()) theirs->Replace({}, dispatch::Contribute(*c, utc_offset));
        return true;
      });
      if (!st.ok()) spdlog::warn("KPIs of a shard replica: {}", st.ToString());
    }
    replica_kpi_ = std::move(theirs);
  }
  book.MergeFrom(*replica_kpi_);
  return book;
}

Status Engine::OpenRecording() {
  replay::LogWriterOptions lo;
  lo.writer = "engine";
  auto w = replay::LogWriter::Open(options_.record_dir, lo);
  if (!w.ok()) return Status(w.status().code(), "--record " + options_.record_dir + ": " + w.status().message());
  recorder_ = std::move(w).value();
  for (const auto& p : recorder_->repairs()) spdlog::warn("recording: {}", p.ToString());
  // Recorded after the store write: a crash in between leaves the batch out
  // of the recording. Say so rather than let a replay differ unexplained.
  for (const auto& [tp, next] : store_->AllOffsets()) {
    const auto recorded = recorder_->NextOffset(tp.topic, tp.partition);
    if (recorded && *recorded < next) {
      spdlog::warn("recording {}: {}/{} offsets {}..{} were applied but not recorded (a crash between the two)",
                   options_.record_dir, tp.topic, tp.partition, *recorded, next - 1);
    }
  }
  recorded_ = &metrics_->GetCounter("cityloop_recorded_records_total", "Inputs and clock advances written by run --record");
  record_errors_ = &metrics_->GetCounter("cityloop_record_errors_total", "Failures of run --record (recording stopped)");
  spdlog::info("recording every applied input into {}", options_.record_dir);
  return Status::Ok();
}

void Engine::Record(bool tick) {
  Status st;
  int64_t n = 0;
  if (tick) {
    st = recorder_->AppendClock(pipeline_->last_ingest_ms());
    n = 1;
  } else {
    for (const ingest::Message& m : batch_) {
      st = recorder_->Append(m, pipeline_->last_ingest_ms());
      if (!st.ok()) break;
      ++n;
    }
  }
  if (st.ok()) st = recorder_->Flush();
  recorded_->Inc(n);
  if (st.ok()) return;
  record_errors_->Inc();
  spdlog::error("recording into {} failed and stops (the engine goes on): {}", options_.record_dir, st.ToString());
  recorder_.reset();
}

Status Engine::Publish() {
  for (const auto& o : result_.offsets) uncommitted_[{o.topic, o.partition}] = o.next_offset;
  if (result_.outbox.empty()) return Status::Ok();
  if (options_.hub) {
    const auto& topics = city_->config().kafka.topics;
    stream_.clear();
    for (const auto& r : result_.outbox) {
      if (r.topic == topics.cases || r.topic == topics.dispatch) stream_.push_back({r.seq, r.topic, r.value});
    }
    options_.hub->Publish(stream_);
  }
  return publisher_->Publish(std::move(result_.outbox));
}

Status Engine::Reload() {
  Counter& accepted = metrics_->GetCounter("cityloop_config_reloads_total", "Rule reloads (SIGHUP)",
                                           {{"result", "applied"}});
  Counter& rejected = metrics_->GetCounter("cityloop_config_reloads_total", "Rule reloads (SIGHUP)",
                                           {{"result", "rejected"}});
  if (options_.config_path.empty()) {
    rejected.Inc();
    return Status::InvalidArgument("no config file to reload");
  }
  ConfigLoadResult loaded = LoadConfigFile(options_.config_path);
  if (!loaded.config) {
    rejected.Inc();
    std::string why;
    for (const auto& e : loaded.errors) why += "\n  " + e.ToString();
    return Status::InvalidArgument("reload of " + options_.config_path + " rejected, rules unchanged:" + why);
  }
  const Config& running = city_->config();
  const Config& fresh = *loaded.config;
  if (!(fresh.city == running.city)) {
    rejected.Inc();
    return Status::InvalidArgument("reload of " + options_.config_path +
                                   " rejected, rules unchanged: the city section changed; restart to apply it");
  }
  std::vector<std::string> later;
  if (!(fresh.kafka == running.kafka)) later.push_back("kafka");
  if (!(fresh.storage == running.storage)) later.push_back("storage");
  if (!(fresh.scale == running.scale)) later.push_back("scale");
  if (!(fresh.ingest == running.ingest)) later.push_back("ingest");
  if (!(fresh.event_time == running.event_time)) later.push_back("event_time");
  if (!(fresh.sla == running.sla)) later.push_back("sla");
  if (!(fresh.api == running.api)) later.push_back("api");
  if (!(fresh.camera == running.camera)) later.push_back("camera");
  for (const auto& section : later) spdlog::warn("reload: changes to '{}' take effect at the next start", section);
  Config next = running;
  next.rules = fresh.rules;
  auto model = CityModel::Build(next);
  if (!model.ok()) {
    rejected.Inc();
    return model.status();
  }
  city_ = *model;
  const detect::ReloadSummary s = shards_ ? shards_->ReloadRules(city_) : pipeline_->ReloadRules(city_);
  accepted.Inc();
  spdlog::info("rules reloaded from {}: {} kept, {} added, {} changed, {} removed ({} rules)", options_.config_path,
               s.kept, s.added, s.changed, s.removed, city_->config().rules.size());
  return Status::Ok();
}

Status Engine::MaybeCommit(bool now) {
  // Kafka's committed offsets are advisory (the store has the real ones), so
  // they are sent at most every kCommitIntervalMs rather than per batch: a
  // commit per batch halves throughput on a busy consumer.
  constexpr int64_t kCommitIntervalMs = 200;
  const int64_t t = clock_->now_ms();
  if (uncommitted_.empty() || (!now && t - last_commit_ms_ < kCommitIntervalMs)) return Status::Ok();
  std::vector<ingest::PartitionOffset> offsets;
  for (const auto& [tp, next] : uncommitted_) offsets.push_back({tp.topic, tp.partition, next});
  uncommitted_.clear();
  last_commit_ms_ = t;
  Status cs = consumer_->CommitAsync(offsets);
  if (!cs.ok()) spdlog::warn("offset commit to Kafka failed (the store has them): {}", cs.ToString());
  FaultPoint("after_commit");
  return Status::Ok();
}

Result<bool> Engine::CaughtUp() {
  if (shards_) {
    // Everything in the input is forwarded, and every owned shard applied its work partition.
    if (!ready()) return false;
    auto routed = router_->CaughtUp(*offsets_);
    if (!routed.ok() || !*routed) return routed;
    std::map<int32_t, int64_t> ends;
    for (const auto& [partition, next] : shards_->Positions()) {
      auto high = offsets_->HighWatermark(city_->config().kafka.topics.work, partition);
      if (!high.ok()) return high.status();
      ends[partition] = *high;
    }
    return shards_->CaughtUp(ends);
  }
  if (!ready() || publisher_->in_flight() > 0) return false;
  const auto assignment = consumer_->Assignment();
  if (assignment.empty()) return false;
  for (const auto& p : assignment) {
    auto high = offsets_->HighWatermark(p.topic, p.partition);
    if (!high.ok()) return high.status();
    if (store_->GetOffset({p.topic, p.partition}).value_or(0) < *high) return false;
  }
  return true;
}

Status Engine::Run(const std::atomic<bool>& stop, std::atomic<bool>* reload) {
  Status result;
  while (!stop.load()) {
    loop_heartbeat_ms_.store(std::chrono::duration_cast<std::chrono::milliseconds>(
                                 std::chrono::steady_clock::now().time_since_epoch()).count(),
                             std::memory_order_relaxed);
    if (reload != nullptr && reload->exchange(false)) {
      Status r = Reload();
      if (!r.ok()) spdlog::error("{}", r.message());
    }
    bool idle = false;
    result = Step(&idle);
    if (!result.ok()) break;
    if (options_.exit_when_caught_up && idle) {
      auto done = CaughtUp();
      if (!done.ok()) spdlog::warn("cannot tell whether input is consumed: {}", done.status().ToString());
      if (done.ok() && *done) {
        spdlog::info("caught up with the input; exiting");
        break;
      }
    }
  }
  if (shards_) {
    router_->Close();
    Status closed = shards_->Close();
    if (!closed.ok()) spdlog::warn("shutdown: {}", closed.message());
  } else {
    Status committed = MaybeCommit(true);
    if (!committed.ok()) spdlog::warn("final offset commit: {}", committed.ToString());
    Status drained = publisher_->Drain(10000);
    if (!drained.ok()) {
      spdlog::warn("shutdown: {} (they stay in the outbox and are sent on restart)", drained.message());
    }
    consumer_->Close();
  }
  if (recorder_) {
    Status closed = recorder_->Close();
    if (!closed.ok()) spdlog::error("closing the recording: {}", closed.ToString());
  }
  spdlog::info("engine totals: {} polls ({:.3f} s polling)", poll_ms_->count(), poll_ms_->sum() / 1000);
  if (!result.ok()) spdlog::error("engine stopped: {}", result.ToString());
  else spdlog::info("engine stopped cleanly");
  return result;
}

}  // namespace cityloop::app
