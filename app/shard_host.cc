#include "app/shard_host.h"

#include <spdlog/spdlog.h>

#include <charconv>
#include <chrono>
#include <cstdio>

#include "app/shard_router.h"
#include "core/shard.h"

namespace cityloop::app {
namespace {

constexpr const char* kMetaShard = "shard";  // "index/count": a store belongs to one shard of one layout

std::optional<int64_t> ParseI64(const std::string* s) {
  if (!s) return std::nullopt;
  int64_t v = 0;
  auto r = std::from_chars(s->data(), s->data() + s->size(), v);
  if (r.ec != std::errc() || r.ptr != s->data() + s->size()) return std::nullopt;
  return v;
}

}  // namespace

std::string ShardStorePath(const std::string& storage_path, int index) {
  char name[16];
  std::snprintf(name, sizeof name, "shard-%03d", index);
  return storage_path + "/" + name;
}

struct ShardHost::Shard {
  int32_t partition = 0;
  std::shared_ptr<storage::Store> store;
  std::unique_ptr<Pipeline> pipeline;
  std::unique_ptr<OutboxPublisher> publisher;
  std::unique_ptr<ShardChangelog> changelog;
  std::map<storage::TopicPartition, int64_t> applied;  // source partition -> next offset to apply
  BatchResult result;
  std::vector<ingest::Message> input;  // this poll's messages, in source coordinates
  std::vector<console::StreamEvent> stream;
};

ShardHost::ShardHost(std::shared_ptr<const CityModel> city, const Options& options, const Clock& clock,
                     MetricsRegistry* metrics)
    : city_(std::move(city)), options_(options), clock_(clock), metrics_(metrics) {
  restored_ = &metrics->GetCounter("cityloop_shard_restores_total",
                                   "Shards rebuilt from the changelog on assignment (another instance owned them)");
  duplicates_ = &metrics->GetCounter("cityloop_shard_duplicates_total",
                                     "Work-topic messages a shard had applied already (forwarded twice), skipped");
}

ShardHost::~ShardHost() {
  Status st = Close();
  if (!st.ok()) spdlog::warn("shards: closing: {}", st.message());
}

Result<std::unique_ptr<ShardHost>> ShardHost::Create(std::shared_ptr<const CityModel> city, const Options& options,
                                                     const Clock& clock, MetricsRegistry* metrics) {
  std::unique_ptr<ShardHost> h(new ShardHost(city, options, clock, metrics));
  const Config& cfg = city->config();
  ingest::ConsumerOptions co;
  co.bootstrap = options.bootstrap;
  co.group_id = cfg.kafka.group_id + "-shards";
  co.client_id = cfg.kafka.client_id + "-shards";
  co.topics = {cfg.kafka.topics.work};
  co.properties = cfg.kafka.ConsumerProperties();
  ShardHost* self = h.get();
  auto consumer = ingest::KafkaConsumer::Create(
      co,
      [self](const std::string& topic, int32_t partition) -> std::optional<int64_t> {
        auto shard = self->Open(partition);
        if (!shard.ok()) {
          self->fatal_ = shard.status();
          return std::nullopt;
        }
        return (*shard)->store->GetOffset({topic, partition});
      },
      [self](bool assigned, const std::vector<ingest::PartitionOffset>& parts) {
        if (!assigned) {
          for (const auto& p : parts) self->Release(p.partition);
        }
        self->assigned_.store(assigned);
        std::string list;
        for (const auto& p : parts) list += (list.empty() ? "" : ",") + std::to_string(p.partition);
        spdlog::info("shards {}: {}", assigned ? "assigned" : "revoked", list);
      });
  if (!consumer.ok()) return consumer.status();
  h->consumer_ = std::move(consumer).value();
  return h;
}

Result<ShardHost::Shard*> ShardHost::Open(int32_t partition) {
  {
    std::lock_guard<std::mutex> lock(shards_mu_);
    auto it = shards_.find(partition);
    if (it != shards_.end()) return it->second.get();
  }
  const Config& cfg = city_->config();
  const ShardSpec spec{partition, cfg.scale.shards};
  const std::string path = ShardStorePath(options_.storage_path, partition);
  storage::StoreOptions so;
  so.sync = cfg.storage.sync_writes;
  auto opened = ShardChangelog::Open(city_, options_.bootstrap, partition, path, so, metrics_);
  if (!opened.ok()) return Status(opened.status().code(), "shard " + std::to_string(partition) + ": " +
                                                             opened.status().message());
  auto shard = std::make_unique<Shard>();
  shard->partition = partition;
  shard->store = std::move(opened->store);
  shard->changelog = std::move(opened->changelog);
  if (opened->restored) restored_->Inc();
  const std::string layout = std::to_string(spec.index) + "/" + std::to_string(spec.count);
  auto stored = shard->store->GetMeta(kMetaShard);
  if (!stored.ok()) return stored.status();
  if (!*stored) {
    storage::WriteBatch wb = shard->store->NewBatch();
    wb.PutMeta(kMetaShard, layout);
    CL_RETURN_IF_ERROR(shard->store->Write(std::move(wb)));
  } else if (**stored != layout) {
    return Status::FailedPrecondition(path + " holds shard " + **stored + ", not " + layout +
                                      " (scale.shards cannot change for an existing deployment)");
  }
  shard->pipeline = std::make_unique<Pipeline>(city_, shard->store.get(), clock_, metrics_, /*live=*/true);
  shard->pipeline->SetShard(spec);
  CL_RETURN_IF_ERROR(shard->pipeline->Restore());
  auto publisher = OutboxPublisher::Open(cfg.kafka, options_.bootstrap,
                                         cfg.kafka.client_id + "-outbox-" + std::to_string(partition),
                                         shard->store.get(), metrics_);
  if (!publisher.ok()) return publisher.status();
  shard->publisher = std::move(publisher).value();
  spdlog::info("shard {} opened at {}", partition, path);
  std::lock_guard<std::mutex> lock(shards_mu_);
  Shard* raw = shard.get();
  shards_[partition] = std::move(shard);
  return raw;
}

void ShardHost::Release(int32_t partition) {
  std::unique_ptr<Shard> shard;
  {
    std::lock_guard<std::mutex> lock(shards_mu_);
    auto it = shards_.find(partition);
    if (it == shards_.end()) return;
    shard = std::move(it->second);
    shards_.erase(it);
  }
  Status drained = shard->publisher->Drain(10000);
  if (!drained.ok()) spdlog::warn("shard {}: {} (the next owner sends them)", partition, drained.message());
  Status logged = shard->changelog->Flush(10000);
  if (!logged.ok()) spdlog::warn("shard {}: {} (the next owner re-derives them)", partition, logged.message());
  const auto next = shard->store->GetOffset({city_->config().kafka.topics.work, partition});
  if (next) {
    Status st = consumer_->CommitAsync({{city_->config().kafka.topics.work, partition, *next}});
    if (!st.ok()) spdlog::warn("shard {}: offset commit: {}", partition, st.message());
  }
  std::erase_if(uncommitted_, [&](const ingest::PartitionOffset& o) { return o.partition == partition; });
  spdlog::info("shard {} released", partition);
}

Status ShardHost::ProcessShard(Shard& shard, std::vector<ingest::Message>& messages) {
  const std::string& work = city_->config().kafka.topics.work;
  shard.input.clear();
  int64_t work_next = 0;
  for (ingest::Message& m : messages) {
    work_next = std::max(work_next, m.offset + 1);
    const std::string* topic = m.header(kSourceTopicHeader);
    const auto partition = ParseI64(m.header(kSourcePartitionHeader));
    const auto offset = ParseI64(m.header(kSourceOffsetHeader));
    if (topic && partition && offset) {
      // The shard works in the input's own coordinates: dead letters, signal
      // provenance and stored offsets name the source, as without shards.
      m.topic = *topic;
      m.partition = static_cast<int32_t>(*partition);
      m.offset = *offset;
    }
    const storage::TopicPartition tp{m.topic, m.partition};
    auto it = shard.applied.find(tp);
    if (it == shard.applied.end()) it = shard.applied.emplace(tp, shard.store->GetOffset(tp).value_or(0)).first;
    if (m.offset < it->second) {
      duplicates_->Inc();
      continue;
    }
    it->second = m.offset + 1;
    shard.input.push_back(std::move(m));
  }
  const ingest::PartitionOffset position{work, shard.partition, work_next};
  Status st = shard.pipeline->Process(shard.input, &shard.result, {}, std::span(&position, 1));
  if (!st.ok()) return Status(st.code(), "shard " + std::to_string(shard.partition) + ": writing a batch failed: " +
                                             st.message());
  uncommitted_.push_back(position);
  return Publish(shard);
}

Status ShardHost::Publish(Shard& shard) {
  if (shard.result.outbox.empty()) return Status::Ok();
  if (options_.hub) {
    const auto& topics = city_->config().kafka.topics;
    shard.stream.clear();
    for (const auto& r : shard.result.outbox) {
      if (r.topic == topics.cases || r.topic == topics.dispatch) shard.stream.push_back({r.seq, r.topic, r.value});
    }
    options_.hub->Publish(shard.stream);
  }
  return shard.publisher->Publish(std::move(shard.result.outbox));
}

Status ShardHost::Step(int timeout_ms, bool* idle) {
  const int max = city_->config().kafka.batch_max_messages;
  batch_.clear();
  CL_RETURN_IF_ERROR(consumer_->Poll(static_cast<size_t>(max), timeout_ms, &batch_));
  if (!fatal_.ok()) return fatal_;
  *idle = batch_.empty();
  // A poll mixes partitions; each shard takes its own, in order.
  std::map<int32_t, std::vector<ingest::Message>> parts;
  for (ingest::Message& m : batch_) parts[m.partition].push_back(std::move(m));
  for (auto& [partition, messages] : parts) {
    Shard* shard = nullptr;
    {
      std::lock_guard<std::mutex> lock(shards_mu_);
      auto it = shards_.find(partition);
      if (it != shards_.end()) shard = it->second.get();
    }
    // Fetched just before a revocation: the next owner reads them again.
    if (!shard) continue;
    CL_RETURN_IF_ERROR(ProcessShard(*shard, messages));
  }
  size_t in_flight = 0;
  for (auto& [partition, shard] : shards_) {
    if (*idle) {
      Status st = shard->pipeline->Tick(&shard->result);
      if (!st.ok()) return st;
      CL_RETURN_IF_ERROR(Publish(*shard));
    }
    CL_RETURN_IF_ERROR(shard->publisher->Poll(0));
    CL_RETURN_IF_ERROR(shard->changelog->Poll());
    in_flight += shard->publisher->in_flight();
  }
  if (!uncommitted_.empty()) {
    Status cs = consumer_->CommitAsync(uncommitted_);
    if (!cs.ok()) spdlog::warn("shards: offset commit to Kafka failed (the stores have them): {}", cs.ToString());
    uncommitted_.clear();
  }
  const bool full = in_flight > options_.max_in_flight;
  if (full != paused_) {
    CL_RETURN_IF_ERROR(full ? consumer_->Pause() : consumer_->Resume());
    paused_ = full;
    spdlog::warn("shards: consumption {} ({} outbox records in flight)", full ? "paused" : "resumed", in_flight);
  }
  return Status::Ok();
}

bool ShardHost::CaughtUp(const std::map<int32_t, int64_t>& ends) const {
  if (!assigned_.load() || shards_.empty()) return false;
  const std::string& work = city_->config().kafka.topics.work;
  for (const auto& [partition, shard] : shards_) {
    if (shard->publisher->in_flight() > 0) return false;
    auto end = ends.find(partition);
    if (end == ends.end()) return false;
    if (shard->store->GetOffset({work, partition}).value_or(0) < end->second) return false;
  }
  return true;
}

std::vector<int32_t> ShardHost::owned() const {
  std::lock_guard<std::mutex> lock(shards_mu_);
  std::vector<int32_t> out;
  for (const auto& [partition, shard] : shards_) out.push_back(partition);
  return out;
}

detect::ReloadSummary ShardHost::ReloadRules(std::shared_ptr<const CityModel> city) {
  city_ = city;
  detect::ReloadSummary summary;  // the same rules in every shard: one shard's summary
  for (auto& [partition, shard] : shards_) summary = shard->pipeline->ReloadRules(city);
  return summary;
}

dispatch::KpiBook ShardHost::Kpi() const {
  dispatch::KpiBook book(city_->config().kpi);
  book.set_track_dirty(false);
  for (const auto& [partition, shard] : shards_) book.MergeFrom(shard->pipeline->kpi());
  return book;
}

dispatch::CaseEngine::Census ShardHost::Census() const {
  dispatch::CaseEngine::Census total;
  for (const auto& [partition, shard] : shards_) {
    const dispatch::CaseEngine::Census c = shard->pipeline->census();
    for (const auto& [status, n] : c.by_status) total.by_status[status] += n;
    total.green += c.green;
    total.yellow += c.yellow;
    total.red += c.red;
    total.timers += c.timers;
  }
  return total;
}

std::map<int32_t, int64_t> ShardHost::Positions() const {
  std::map<int32_t, int64_t> out;
  const std::string& work = city_->config().kafka.topics.work;
  for (const auto& [partition, shard] : shards_) {
    out[partition] = shard->store->GetOffset({work, partition}).value_or(0);
  }
  return out;
}

std::optional<int64_t> ShardHost::CachedWorkEnd(int32_t partition) const {
  return consumer_ ? consumer_->CachedHighWatermark(city_->config().kafka.topics.work, partition) : std::nullopt;
}

std::vector<std::shared_ptr<const storage::Store>> ShardHost::stores() const {
  std::lock_guard<std::mutex> lock(shards_mu_);
  std::vector<std::shared_ptr<const storage::Store>> out;
  for (const auto& [partition, shard] : shards_) out.push_back(shard->store);
  return out;
}

Status ShardHost::Close() {
  if (!consumer_) return Status::Ok();
  for (const int32_t partition : owned()) Release(partition);
  consumer_->Close();
  consumer_.reset();
  return Status::Ok();
}

}  // namespace cityloop::app
