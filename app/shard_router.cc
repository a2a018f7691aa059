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
  po.properties = cfg.kafka.properties;
  ShardRouter* self = r.get();
  auto producer = ingest::KafkaProducer::Create(po, [self](uint64_t, const Status& st) {
    if (st.ok()) return;
    if (self->failed_deliveries_++ == 0) self->first_failure_ = st.ToString();
  });
  if (!producer.ok()) return producer.status();
  r->producer_ = std::move(producer).value();

  ingest::ConsumerOptions co;
  co.bootstrap = bootstrap;
  co.group_id = cfg.kafka.group_id;
  co.client_id = cfg.kafka.client_id + "-router";
  co.topics = {cfg.kafka.topics.sensors,       cfg.kafka.topics.reports, cfg.kafka.topics.camera_detections,
               cfg.kafka.topics.camera_frames, cfg.kafka.topics.units,   cfg.kafka.topics.commands};
  co.properties = cfg.kafka.properties;
  auto consumer = ingest::KafkaConsumer::Create(
      co, /*lookup=*/nullptr,  // stateless: resume at Kafka's committed offsets
      [self](bool assigned, const std::vector<ingest::PartitionOffset>& parts) {
        if (!assigned) {
          // Hand over only what the work topic has: the next owner resumes there.
          Status st = self->Settle(10000, /*commit_now=*/true);
          if (!st.ok()) spdlog::warn("router: on revocation: {} (the next owner forwards those again)", st.message());
        }
        self->assigned_ = assigned;
        spdlog::info("router: input partitions {}: {}", assigned ? "assigned" : "revoked", parts.size());
      });
  if (!consumer.ok()) return consumer.status();
  r->consumer_ = std::move(consumer).value();
  return r;
}

Status ShardRouter::Forward(const ingest::Message& m) {
  const std::string& work = city_->config().kafka.topics.work;
  ingest::Headers headers = m.headers;
  headers.emplace_back(kSourceTopicHeader, m.topic);
  headers.emplace_back(kSourcePartitionHeader, std::to_string(m.partition));
  headers.emplace_back(kSourceOffsetHeader, std::to_string(m.offset));
  const int shard = ShardOf(*city_, m, shards_);
  if (shard >= 0) {
    routed_->Inc();
    return producer_->Produce(work, m.key, m.value, headers, 0, shard, m.timestamp_ms);
  }
  // Every shard applies it; only the home shard reports it if it is bad.
  broadcast_->Inc();
  const int home = ShardOfKey(m.key, shards_);
  for (int p = 0; p < shards_; ++p) {
    if (p == home) {
      CL_RETURN_IF_ERROR(producer_->Produce(work, m.key, m.value, headers, 0, p, m.timestamp_ms));
      continue;
    }
    ingest::Headers copy = headers;
    copy.emplace_back(kCopyHeader, std::to_string(home));
    CL_RETURN_IF_ERROR(producer_->Produce(work, m.key, m.value, copy, 0, p, m.timestamp_ms));
  }
  return Status::Ok();
}

Status ShardRouter::DeadLetter(const ingest::Message& m, const Status& why) {
  spdlog::warn("router: {}/{}@{} cannot be forwarded, dead-lettered: {}", m.topic, m.partition, m.offset,
               why.message());
  unroutable_->Inc();
  ingest::Headers headers{{"x-source-topic", m.topic},
                          {"x-source-partition", std::to_string(m.partition)},
                          {"x-source-offset", std::to_string(m.offset)},
                          {"x-error", "unroutable: " + why.message()},
                          {"x-error-code", "unroutable"},
                          {"x-value-omitted-bytes", std::to_string(m.value.size())}};
  return producer_->Produce(city_->config().kafka.topics.dlq, m.key, {}, headers);
}

Status ShardRouter::Settle(int timeout_ms, bool commit_now) {
  if (forwarded_.empty()) return Status::Ok();
  // Kafka's offsets are committed at most every 200 ms (a commit per poll
  // costs throughput); what is forwarded meanwhile is acknowledged already.
  const auto now = std::chrono::steady_clock::now();
  if (!commit_now && now - last_commit_ < std::chrono::milliseconds(200)) {
    Status flushed = producer_->Flush(timeout_ms);
    if (failed_deliveries_ > 0) {
      return Status::Unavailable("forwarding to the work topic failed (" + std::to_string(failed_deliveries_) +
                                 " records; first: " + first_failure_ + ")");
    }
    return flushed;
  }
  last_commit_ = now;
  Status flushed = producer_->Flush(timeout_ms);
  if (failed_deliveries_ > 0) {
    return Status::Unavailable("forwarding to the work topic failed (" + std::to_string(failed_deliveries_) +
                               " records; first: " + first_failure_ + ")");
  }
  CL_RETURN_IF_ERROR(flushed);
  std::vector<ingest::PartitionOffset> offsets;
  for (const auto& [tp, next] : forwarded_) offsets.push_back({tp.topic, tp.partition, next});
  forwarded_.clear();
  return consumer_->CommitAsync(offsets);
}

Status ShardRouter::Step(int timeout_ms, bool* idle) {
  batch_.clear();
  const int max = city_->config().kafka.batch_max_messages;
  CL_RETURN_IF_ERROR(consumer_->Poll(static_cast<size_t>(max), timeout_ms, &batch_));
  *idle = batch_.empty();
  for (const ingest::Message& m : batch_) {
    Status st = Forward(m);
    // A full local queue: serve deliveries and try again.
    while (!st.ok() && st.code() == StatusCode::kUnavailable) {
      producer_->Poll(100);
      st = Forward(m);
    }
    if (!st.ok() && st.code() == StatusCode::kInvalidArgument) st = DeadLetter(m, st);
    CL_RETURN_IF_ERROR(st);
    int64_t& next = forwarded_[{m.topic, m.partition}];
    next = std::max(next, m.offset + 1);
  }
  producer_->Poll(0);
  // Wait for the work topic: the input offsets are committed only behind it.
  Status settled = Settle(30000, /*commit_now=*/false);
  if (failed_deliveries_ > 0) return settled;
  if (!settled.ok()) spdlog::warn("router: {} (retrying)", settled.message());
  return Status::Ok();
}

Result<bool> ShardRouter::CaughtUp(ingest::OffsetQuery& offsets) {
  if (!assigned_ || !forwarded_.empty()) return false;
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
  Status st = Settle(10000, /*commit_now=*/true);
  if (!st.ok()) spdlog::warn("router: closing: {}", st.message());
  consumer_->Close();
  consumer_.reset();
}

}  // namespace cityloop::app
