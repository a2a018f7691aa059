#include "app/outbox_publisher.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "app/fault_points.h"

namespace cityloop::app {

OutboxPublisher::OutboxPublisher(storage::Store* store, MetricsRegistry* metrics) : store_(store) {
  published_ = &metrics->GetCounter("cityloop_outbox_published_total", "Outbox records acknowledged by Kafka");
  failures_ = &metrics->GetCounter("cityloop_outbox_delivery_failures_total", "Outbox deliveries that failed and were retried");
  pending_ = &metrics->GetGauge("cityloop_outbox_pending", "Outbox records not yet acknowledged by Kafka");
}

Result<std::unique_ptr<OutboxPublisher>> OutboxPublisher::Open(const KafkaOptions& kafka,
                                                               const std::string& bootstrap,
                                                               const std::string& client_id, storage::Store* store,
                                                               MetricsRegistry* metrics) {
  ingest::ProducerOptions po;
  po.bootstrap = bootstrap;
  po.client_id = client_id;
  po.linger_ms = 1;
  po.properties = kafka.ProducerProperties();
  auto publisher = Create(po, store, metrics);
  if (!publisher.ok()) return publisher.status();
  CL_RETURN_IF_ERROR((*publisher)->RepublishPending());
  return publisher;
}

Result<std::unique_ptr<OutboxPublisher>> OutboxPublisher::Create(const ingest::ProducerOptions& options,
                                                                 storage::Store* store, MetricsRegistry* metrics) {
  std::unique_ptr<OutboxPublisher> p(new OutboxPublisher(store, metrics));
  OutboxPublisher* self = p.get();
  auto producer = ingest::KafkaProducer::Create(options, [self](uint64_t seq, const Status& st) {
    std::lock_guard<std::mutex> lock(self->reports_mu_);
    (st.ok() ? self->acked_ : self->failed_).push_back(seq);
    if (!st.ok()) spdlog::warn("outbox record {} not delivered: {}", seq, st.ToString());
  });
  if (!producer.ok()) return producer.status();
  p->producer_ = std::move(producer).value();
  return p;
}

Status OutboxPublisher::Produce(const storage::OutboxRecord& r) {
  return producer_->Produce(r.topic, r.key, r.value, r.headers, r.seq);
}

Status OutboxPublisher::ProduceOrHold(const storage::OutboxRecord& r) {
  Status st = Produce(r);
  if (st.ok() || st.code() != StatusCode::kUnavailable) return st;
  failures_->Inc();
  if (unsent_.empty()) {
    spdlog::warn("outbox record {} refused by the producer for now, held for a retry: {}", r.seq, st.message());
  }
  unsent_.insert(r.seq);
  if (backoff_.count() == 0) {
    backoff_ = std::chrono::milliseconds(100);
    retry_at_ = std::chrono::steady_clock::now() + backoff_;
  }
  return Status::Ok();
}

Status OutboxPublisher::RetryUnsent() {
  if (unsent_.empty() || std::chrono::steady_clock::now() < retry_at_) return Status::Ok();
  while (!unsent_.empty()) {
    const uint64_t seq = *unsent_.begin();
    Status st = Produce(in_flight_.at(seq));
    if (!st.ok() && st.code() != StatusCode::kUnavailable) return st;
    if (!st.ok()) {
      backoff_ = std::min<std::chrono::milliseconds>(backoff_ * 2, std::chrono::seconds(5));
      retry_at_ = std::chrono::steady_clock::now() + backoff_;
      return Status::Ok();
    }
    unsent_.erase(unsent_.begin());
  }
  backoff_ = std::chrono::milliseconds(0);
  spdlog::info("outbox: the producer takes records again");
  return Status::Ok();
}

Status OutboxPublisher::RepublishPending() {
  std::vector<storage::OutboxRecord> pending;
  CL_RETURN_IF_ERROR(store_->ForEachOutbox([&](const storage::OutboxRecord& r) {
    pending.push_back(r);
    return true;
  }));
  if (!pending.empty()) spdlog::info("republishing {} outbox records left by the previous run", pending.size());
  return Publish(std::move(pending));
}

Status OutboxPublisher::Publish(std::vector<storage::OutboxRecord>&& records) {
  for (auto& r : records) {
    if (in_flight_.count(r.seq)) continue;
    // Behind records still held, a new one waits its turn (keeps the order).
    if (unsent_.empty()) {
      CL_RETURN_IF_ERROR(ProduceOrHold(r));
    } else {
      unsent_.insert(r.seq);
    }
    const uint64_t seq = r.seq;
    in_flight_.emplace(seq, std::move(r));
  }
  pending_->Set(static_cast<double>(in_flight_.size()));
  return Status::Ok();
}

Status OutboxPublisher::Poll(int timeout_ms) {
  producer_->Poll(timeout_ms);
  std::vector<uint64_t> acked, failed;
  {
    std::lock_guard<std::mutex> lock(reports_mu_);
    acked.swap(acked_);
    failed.swap(failed_);
  }
  for (uint64_t seq : failed) {
    failures_->Inc();
    auto it = in_flight_.find(seq);
    if (it != in_flight_.end()) CL_RETURN_IF_ERROR(ProduceOrHold(it->second));
  }
  CL_RETURN_IF_ERROR(RetryUnsent());
  if (!acked.empty()) {
    FaultPoint("after_publish");
    CL_RETURN_IF_ERROR(store_->DeleteOutbox(acked));
    for (uint64_t seq : acked) in_flight_.erase(seq);
    published_->Inc(static_cast<int64_t>(acked.size()));
  }
  pending_->Set(static_cast<double>(in_flight_.size()));
  return Status::Ok();
}

Status OutboxPublisher::Drain(int timeout_ms) {
  const int step = 50;
  for (int waited = 0; !in_flight_.empty() && waited < timeout_ms; waited += step) {
    CL_RETURN_IF_ERROR(Poll(step));
  }
  if (!in_flight_.empty()) {
    return Status::Unavailable(std::to_string(in_flight_.size()) + " outbox records still unacknowledged");
  }
  return Status::Ok();
}

}  // namespace cityloop::app
