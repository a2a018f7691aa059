#include "app/shard_replicas.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>

namespace cityloop::app {

Result<std::unique_ptr<ShardReplicas>> ShardReplicas::Create(std::shared_ptr<const CityModel> city,
                                                             const std::string& bootstrap,
                                                             const std::string& storage_path,
                                                             MetricsRegistry* metrics) {
  std::unique_ptr<ShardReplicas> r(new ShardReplicas(city));
  r->storage_path_ = storage_path;
  r->applied_ = &metrics->GetCounter("cityloop_replica_records_total",
                                     "Changelog records applied to this instance's read replicas of the shards");
  const Config& cfg = city->config();
  const std::string& topic = cfg.kafka.topics.changelog;
  // Replicas are rebuilt on every start: what an earlier run left goes.
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(storage_path, ec)) {
    if (entry.is_directory() && entry.path().filename().string().rfind("replica-", 0) == 0) {
      std::filesystem::remove_all(entry.path(), ec);
    }
  }
  // Each partition from its latest complete snapshot.
  std::map<int32_t, int64_t> start;
  auto query = ingest::OffsetQuery::Create(bootstrap, cfg.kafka.properties);
  if (!query.ok()) return query.status();
  for (int32_t p = 0; p < cfg.scale.shards; ++p) {
    auto tail = ReadChangelogTail(**query, topic, p);
    if (!tail.ok()) return tail.status();
    start[p] = tail->base >= 0 ? tail->base : 0;
    ShardReplicas* self = r.get();
    Replica& replica = r->replicas_[p];
    replica.follower = std::make_unique<ChangelogFollower>([self, p]() -> Result<std::shared_ptr<storage::Store>> {
      Replica& rep = self->replicas_[p];
      char name[48];
      std::snprintf(name, sizeof name, "replica-%03d-%d", p, ++rep.generation);
      return OpenFresh(self->storage_path_ + "/" + name, {}, /*remove_when_closed=*/true);
    });
  }
  ingest::ConsumerOptions co;
  co.bootstrap = bootstrap;
  co.client_id = cfg.kafka.client_id + "-replicas";
  co.topics = {topic};
  co.properties = cfg.kafka.ConsumerProperties();
  co.assign_all_partitions = true;
  auto consumer = ingest::KafkaConsumer::Create(co, [start](const std::string&, int32_t p) -> std::optional<int64_t> {
    auto it = start.find(p);
    return it == start.end() ? std::optional<int64_t>() : it->second;
  });
  if (!consumer.ok()) return consumer.status();
  r->consumer_ = std::move(consumer).value();
  return r;
}

Status ShardReplicas::Poll(int timeout_ms, const std::vector<int32_t>& owned, console::EventHub* hub) {
  batch_.clear();
  CL_RETURN_IF_ERROR(consumer_->Poll(1000, timeout_ms, &batch_));
  for (const ingest::Message& m : batch_) {
    auto it = replicas_.find(m.partition);
    if (it == replicas_.end()) continue;
    Status st = it->second.follower->Apply(m);
    if (!st.ok()) {
      // A replica is a convenience for reads: report, and keep following.
      spdlog::warn("replica of shard {}: {}", m.partition, st.ToString());
      continue;
    }
    applied_->Inc();
  }
  if (batch_.empty()) return Status::Ok();
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [p, replica] : replicas_) {
      if (replica.follower->current()) published_[p] = replica.follower->current();
    }
  }
  // The live feed of the shards other instances own. History is not
  // replayed: a replica's first look only finds where its events stand.
  const auto& topics = city_->config().kafka.topics;
  for (auto& [p, replica] : replicas_) {
    const auto& store = replica.follower->current();
    if (!store) continue;
    const bool first_look = !replica.last_event;
    const bool theirs = hub && std::find(owned.begin(), owned.end(), p) == owned.end();
    stream_.clear();
    uint64_t last = replica.last_event.value_or(0);
    CL_RETURN_IF_ERROR(store->ForEachEventAfter(last, [&](uint64_t seq, std::string_view topic, std::string_view j) {
      last = seq;
      if (theirs && !first_look && (topic == topics.cases || topic == topics.dispatch)) {
        stream_.push_back({seq, std::string(topic), std::string(j)});
      }
      return true;
    }));
    replica.last_event = last;
    if (!stream_.empty()) hub->Publish(stream_);
  }
  return Status::Ok();
}

std::vector<std::shared_ptr<const storage::Store>> ShardReplicas::stores(const std::vector<int32_t>& owned) const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<std::shared_ptr<const storage::Store>> out;
  for (const auto& [p, store] : published_) {
    if (std::find(owned.begin(), owned.end(), p) == owned.end()) out.push_back(store);
  }
  return out;
}

}  // namespace cityloop::app
