#include "app/shard_router.h"

#include <spdlog/spdlog.h>

#include <chrono>

#include "core/shard.h"
#include "ingest/routing_peek.h"

namespace cityloop::app {
namespace {

// Districts take the shards in turn, in config order: balanced however few
// they are (a hash of three names may well pick one shard for all).
int ShardOfCell(const CityModel& city, const CellInfo* cell, const ingest::Message& m, int shards) {
  if (cell && cell->district) {
    const auto& districts = city.config().city.districts;
    const auto index = cell->district - districts.data();
    if (index >= 0 && index < static_cast<std::ptrdiff_t>(districts.size())) return static_cast<int>(index % shards);
    return ShardOfKey(cell->district->id, shards);
  }
  return ShardOfKey(m.key, shards);  // outside the city: the shard dead-letters it
}

}  // namespace

int ShardRouter::ShardOf(const CityModel& city, const ingest::Message& m, int shards) {
  const TopicNames& topics = city.config().kafka.topics;
  if (m.topic == topics.units) return -1;
  if (m.topic == topics.commands) {
    const ingest::RoutingFields f = ingest::PeekRoutingFields(m.value);
    if (auto shard = ShardOfCaseId(f.case_id, shards)) return *shard;
    return ShardOfKey(m.key, shards);
  }
  if (m.topic == topics.camera_frames || m.topic == topics.camera_detections) {
    if (const Camera* camera = city.FindCamera(m.key)) return ShardOfCell(city, city.CellAt(camera->position), m, shards);
  }
  if (m.topic == topics.sensors) {
    if (const Device* device = city.FindDevice(m.key)) return ShardOfCell(city, city.CellAt(device->position), m, shards);
  }
  // Unregistered devices and citizen reports: where they say they are.
  const ingest::RoutingFields f = ingest::PeekRoutingFields(m.value);
  return ShardOfCell(city, f.position ? city.CellAt(*f.position) : nullptr, m, shards);
}

ShardRouter::ShardRouter(std::shared_ptr<const CityModel> city, MetricsRegistry* metrics)
    : city_(std::move(city)), shards_(city_->config().scale.shards) {
  routed_ = &metrics->GetCounter("cityloop_router_forwarded_total",
                                 "Input messages the shard router forwarded to the work topic");
  broadcast_ = &metrics->GetCounter("cityloop_router_broadcast_total",
                                    "Input messages the shard router sent to every shard (unit status)");
  unroutable_ = &metrics->GetCounter("cityloop_router_unroutable_total",
                                     "Input messages the work topic refused (dead-lettered by the router)");
}

ShardRouter::~ShardRouter() { Close(); }

Result<std::unique_ptr<ShardRouter>> ShardRouter::Create(std::shared_ptr<const CityModel> city,
                                                         const std::string& bootstrap, MetricsRegistry* metrics) {
  const Config& cfg = city->config();
  auto partitions = ingest::PartitionCount(bootstrap, cfg.kafka.topics.work);
  if (!partitions.ok()) return partitions.status();
  if (*partitions != cfg.scale.shards) {
    return Status::FailedPrecondition("kafka.topics.work (" + cfg.kafka.topics.work + ") has " +
                                      std::to_string(*partitions) + " partitions but scale.shards is " +
                                      std::to_string(cfg.scale.shards) + ": create it with one partition per shard");
  }
  std::unique_ptr<ShardRouter> r(new ShardRouter(city, metrics));
  ingest::ProducerOptions po;
  po.bootstrap = bootstrap;
  po.client_id = cfg.kafka.client_id + "-router";
  po.linger_ms = 2;
  po.properties = cfg.kafka.ProducerProperties();
  ShardRouter* self = r.get();
  auto producer = ingest::KafkaProducer::Create(
      po, [self](uint64_t seq, const Status& st) { self->OnDelivery(seq, st); });
  if (!producer.ok()) return producer.status();
  r->producer_ = std::move(producer).value();

  ingest::ConsumerOptions co;
  co.bootstrap = bootstrap;
  co.group_id = cfg.kafka.group_id;
  co.client_id = cfg.kafka.client_id + "-router";
  co.topics = {cfg.kafka.topics.sensors,       cfg.kafka.topics.reports, cfg.kafka.topics.camera_detections,
               cfg.kafka.topics.camera_frames, cfg.kafka.topics.units,   cfg.kafka.topics.commands};
  co.properties = cfg.kafka.ConsumerProperties();
  auto consumer = ingest::KafkaConsumer::Create(
      co, /*lookup=*/nullptr,  // stateless: resume at Kafka's committed offsets
      [self](bool assigned, const std::vector<ingest::PartitionOffset>& parts) {
        if (!assigned) {
          // Hand over only what the work topic has: the next owner resumes there.
          Status st = self->Settle(10000);
          if (!st.ok()) spdlog::warn("router: on revocation: {} (the next owner forwards those again)", st.message());
        }
        self->assigned_ = assigned;
        spdlog::info("router: input partitions {}: {}", assigned ? "assigned" : "revoked", parts.size());
      });
  if (!consumer.ok()) return consumer.status();
  r->consumer_ = std::move(consumer).value();
  return r;
}

Status ShardRouter::ProduceTracked(uint64_t seq, const std::string& topic, const ingest::Message& m,
                                   const std::string& value, const ingest::Headers& headers, int32_t partition) {
  Status st = producer_->Produce(topic, m.key, value, headers, seq, partition, m.timestamp_ms);
  // A full local queue: serve deliveries and try again.
  while (!st.ok() && st.code() == StatusCode::kUnavailable) {
    producer_->Poll(100);
    st = producer_->Produce(topic, m.key, value, headers, seq, partition, m.timestamp_ms);
  }
  if (st.ok()) ++pending_[seq - pending_front_seq_].outstanding;
  return st;
}

void ShardRouter::OnDelivery(uint64_t seq, const Status& st) {
  if (!st.ok()) {
    // Left outstanding: nothing at or after it is committed, and Step fails.
    if (failed_deliveries_++ == 0) first_failure_ = st.ToString();
    return;
  }
  --pending_[seq - pending_front_seq_].outstanding;
}

void ShardRouter::CollectAcknowledged() {
  while (!pending_.empty() && pending_.front().sealed && pending_.front().outstanding == 0) {
    int64_t& next = acked_[pending_.front().source];
    next = std::max(next, pending_.front().offset + 1);
    pending_.pop_front();
    ++pending_front_seq_;
  }
}

Status ShardRouter::DeliveryFailure() const {
  if (failed_deliveries_ == 0) return Status::Ok();
  return Status::Unavailable("forwarding to the work topic failed (" + std::to_string(failed_deliveries_) +
                             " records; first: " + first_failure_ + ")");
}

Status ShardRouter::Forward(const ingest::Message& m, uint64_t seq) {
  const std::string& work = city_->config().kafka.topics.work;
  ingest::Headers headers = m.headers;
  headers.emplace_back(kSourceTopicHeader, m.topic);
  headers.emplace_back(kSourcePartitionHeader, std::to_string(m.partition));
  headers.emplace_back(kSourceOffsetHeader, std::to_string(m.offset));
  const int shard = ShardOf(*city_, m, shards_);
  if (shard >= 0) {
    routed_->Inc();
    return ProduceTracked(seq, work, m, m.value, headers, shard);
  }
  // Every shard applies it; only the home shard reports it if it is bad.
  broadcast_->Inc();
  const int home = ShardOfKey(m.key, shards_);
  for (int p = 0; p < shards_; ++p) {
    if (p == home) {
      CL_RETURN_IF_ERROR(ProduceTracked(seq, work, m, m.value, headers, p));
      continue;
    }
    ingest::Headers copy = headers;
    copy.emplace_back(kCopyHeader, std::to_string(home));
    CL_RETURN_IF_ERROR(ProduceTracked(seq, work, m, m.value, copy, p));
  }
  return Status::Ok();
}

Status ShardRouter::DeadLetter(const ingest::Message& m, uint64_t seq, const Status& why) {
  spdlog::warn("router: {}/{}@{} cannot be forwarded, dead-lettered: {}", m.topic, m.partition, m.offset,
               why.message());
  unroutable_->Inc();
  ingest::Headers headers{{"x-source-topic", m.topic},
                          {"x-source-partition", std::to_string(m.partition)},
                          {"x-source-offset", std::to_string(m.offset)},
                          {"x-error", "unroutable: " + why.message()},
                          {"x-error-code", "unroutable"},
                          {"x-value-omitted-bytes", std::to_string(m.value.size())}};
  return ProduceTracked(seq, city_->config().kafka.topics.dlq, m, {}, headers, -1);
}

Status ShardRouter::Settle(int wait_ms) {
  const bool now = wait_ms > 0;
  Status flushed = now ? producer_->Flush(wait_ms) : Status::Ok();
  CollectAcknowledged();
  CL_RETURN_IF_ERROR(DeliveryFailure());
  CL_RETURN_IF_ERROR(flushed);
  if (acked_.empty()) return Status::Ok();
  // Kafka's offsets are committed at most every 200 ms (a commit per poll costs throughput).
  const auto t = std::chrono::steady_clock::now();
  if (!now && t - last_commit_ < std::chrono::milliseconds(200)) return Status::Ok();
  last_commit_ = t;
  std::vector<ingest::PartitionOffset> offsets;
  for (const auto& [tp, next] : acked_) offsets.push_back({tp.topic, tp.partition, next});
  acked_.clear();
  return consumer_->CommitAsync(offsets);
}

Status ShardRouter::Step(int timeout_ms, bool* idle) {
  batch_.clear();
  const int max = city_->config().kafka.batch_max_messages;
  CL_RETURN_IF_ERROR(consumer_->Poll(static_cast<size_t>(max), timeout_ms, &batch_));
  *idle = batch_.empty();
  for (const ingest::Message& m : batch_) {
    const uint64_t seq = pending_front_seq_ + pending_.size();
    pending_.push_back({{m.topic, m.partition}, m.offset, 0, false});
    Status st = Forward(m, seq);
    if (!st.ok() && st.code() == StatusCode::kInvalidArgument) st = DeadLetter(m, seq, st);
    CL_RETURN_IF_ERROR(st);
    pending_[seq - pending_front_seq_].sealed = true;
  }
  producer_->Poll(0);
  // Bounded in flight: wait for the work topic before taking more.
  while (pending_.size() > kMaxPending && failed_deliveries_ == 0) {
    producer_->Poll(100);
    CollectAcknowledged();
  }
  Status settled = Settle(0);
  if (failed_deliveries_ > 0) return settled;
  if (!settled.ok()) spdlog::warn("router: {} (retrying)", settled.message());
  return Status::Ok();
}

Result<bool> ShardRouter::CaughtUp(ingest::OffsetQuery& offsets) {
  if (!assigned_ || !pending_.empty() || !acked_.empty()) return false;
  auto committed = consumer_->Committed(5000);
  if (!committed.ok()) return committed.status();
  for (const auto& p : *committed) {
    auto high = offsets.HighWatermark(p.topic, p.partition);
    if (!high.ok()) return high.status();
    if (std::max<int64_t>(p.next_offset, 0) < *high) return false;
  }
  return true;
}

void ShardRouter::Close() {
  if (!consumer_) return;
  Status st = Settle(10000);
  if (!st.ok()) spdlog::warn("router: closing: {}", st.message());
  consumer_->Close();
  consumer_.reset();
}

}  // namespace cityloop::app
