#include "app/shard_changelog.h"

#include <spdlog/spdlog.h>

#include <charconv>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <map>
#include <optional>

#include "ingest/offset_query.h"

namespace cityloop::app {
namespace {

constexpr size_t kMaxRecordBytes = 512u << 10;  // well under the default message.max.bytes (1 MB)
constexpr const char* kMetaEpoch = "changelog_epoch";
constexpr int kTimeoutMs = 30000;

int64_t HeaderInt(const ingest::Message& m, const std::string& name, int64_t fallback = -1) {
  const std::string* s = m.header(name);
  if (!s) return fallback;
  int64_t v = 0;
  auto r = std::from_chars(s->data(), s->data() + s->size(), v);
  return r.ec == std::errc() && r.ptr == s->data() + s->size() ? v : fallback;
}

std::string HeaderStr(const ingest::Message& m, const std::string& name) {
  const std::string* s = m.header(name);
  return s ? *s : "";
}

// Rebuilds the (empty) store at path from the snapshot at tail.base and the changes of its epoch.
Result<std::shared_ptr<storage::Store>> Restore(ingest::OffsetQuery& query, const std::string& topic, int32_t partition,
                                                const ChangelogTail& tail,
                                                const std::string& path, const storage::StoreOptions& options,
                                                uint64_t* epoch) {
  // The first store made is the restored one; any later (a newer owner's
  // snapshot cut short at the end of the log) is scratch.
  int made = 0;
  ChangelogFollower follower([&]() -> Result<std::shared_ptr<storage::Store>> {
    const std::string where = made++ == 0 ? path : path + ".scratch-" + std::to_string(made);
    return OpenFresh(where, options, /*remove_when_closed=*/where != path);
  });
  CL_RETURN_IF_ERROR(query.ReadRange(topic, partition, tail.base, tail.high,
                                     [&](const ingest::Message& m) { return follower.Apply(m); }, kTimeoutMs));
  if (!follower.current()) {
    return Status::DataLoss(topic + "/" + std::to_string(partition) + ": the snapshot at offset " +
                            std::to_string(tail.base) + " is incomplete");
  }
  *epoch = follower.epoch();
  spdlog::info("shard {}: restored from {} (snapshot at offset {}, epoch {}, {} changes after it)", partition, topic,
               tail.base, follower.epoch(), follower.changes());
  return follower.current();
}

uint64_t StoredEpoch(const storage::Store& store) {
  auto v = store.GetMeta(kMetaEpoch);
  if (!v.ok() || !*v) return 0;
  uint64_t e = 0;
  std::from_chars((*v)->data(), (*v)->data() + (*v)->size(), e);
  return e;
}

}  // namespace

Result<ChangelogTail> ReadChangelogTail(ingest::OffsetQuery& query, const std::string& topic, int32_t partition) {
  ChangelogTail t;
  auto high = query.HighWatermark(topic, partition, kTimeoutMs);
  if (!high.ok()) return high.status();
  t.high = *high;
  if (t.high == 0) return t;
  CL_RETURN_IF_ERROR(query.ReadRange(
      topic, partition, t.high - 1, t.high,
      [&](const ingest::Message& m) {
        t.epoch = HeaderInt(m, "x-cl-epoch", 0);
        t.seq = HeaderInt(m, "x-cl-seq", 0);
        t.base = HeaderInt(m, "x-cl-base");
        return Status::Ok();
      },
      kTimeoutMs));
  return t;
}

Result<std::shared_ptr<storage::Store>> OpenFresh(const std::string& path, const storage::StoreOptions& options,
                                                  bool remove_when_closed) {
  std::error_code ec;
  std::filesystem::remove_all(path, ec);
  if (ec) return Status::IoError("removing " + path + ": " + ec.message());
  std::filesystem::create_directories(std::filesystem::path(path).parent_path(), ec);
  auto store = storage::Store::Open(path, options);
  if (!store.ok()) return store.status();
  if (!remove_when_closed) return std::shared_ptr<storage::Store>(std::move(store).value());
  return std::shared_ptr<storage::Store>(store->release(), [path](storage::Store* s) {
    delete s;
    std::error_code ignored;
    std::filesystem::remove_all(path, ignored);
  });
}

ChangelogFollower::ChangelogFollower(MakeStore make_store) : make_store_(std::move(make_store)) {}

Status ChangelogFollower::Apply(const ingest::Message& m) {
  const std::string kind = HeaderStr(m, "x-cl-kind");
  const int64_t e = HeaderInt(m, "x-cl-epoch", 0);
  if (kind == "snapshot-begin") {
    // Only a newer owner's snapshot replaces what is followed; an owner's
    // periodic one repeats what its changes already gave.
    if (current_ && e <= static_cast<int64_t>(epoch_)) return Status::Ok();
    auto store = make_store_();
    if (!store.ok()) return store.status();
    building_ = std::move(store).value();
    building_epoch_ = e;
    return Status::Ok();
  }
  if (building_ && e == building_epoch_) {
    if (kind == "snapshot") return building_->ApplyChangeSet(m.value);
    if (kind == "snapshot-end") {
      current_ = std::move(building_);
      epoch_ = static_cast<uint64_t>(e);
      applied_seq_ = HeaderInt(m, "x-cl-seq", 0);
      changes_ = 0;
      pending_.clear();
    }
    return Status::Ok();
  }
  if (!current_ || kind != "change" || e != static_cast<int64_t>(epoch_)) return Status::Ok();  // not this lineage
  const int64_t seq = HeaderInt(m, "x-cl-seq", 0);
  if (seq <= applied_seq_) return Status::Ok();  // produced again after a retry
  const std::string part = HeaderStr(m, "x-cl-part");
  if (!part.empty()) {
    // "i/n": gather the parts of one change set.
    if (seq != pending_seq_) pending_.clear();
    pending_seq_ = seq;
    pending_ += m.value;
    const auto slash = part.find('/');
    if (slash == std::string::npos || part.substr(0, slash) != part.substr(slash + 1)) return Status::Ok();
    Status st = current_->ApplyChangeSet(pending_);
    pending_.clear();
    CL_RETURN_IF_ERROR(st);
  } else {
    CL_RETURN_IF_ERROR(current_->ApplyChangeSet(m.value));
  }
  applied_seq_ = seq;
  ++changes_;
  return Status::Ok();
}

ShardChangelog::ShardChangelog(std::shared_ptr<const CityModel> city, int32_t partition, MetricsRegistry* metrics)
    : city_(std::move(city)), partition_(partition), topic_(city_->config().kafka.topics.changelog) {
  char key[16];
  std::snprintf(key, sizeof key, "shard-%03d", partition);
  key_ = key;
  records_ = &metrics->GetCounter("cityloop_changelog_records_total", "Records produced to the shard changelogs");
  snapshots_ = &metrics->GetCounter("cityloop_changelog_snapshots_total", "Shard snapshots written to the changelog");
  failures_ = &metrics->GetCounter("cityloop_changelog_failures_total",
                                   "Changelog records not produced (a new snapshot follows)");
}

ShardChangelog::~ShardChangelog() {
  if (store_) (void)store_->SetChangeListener(nullptr);
}

Result<ShardChangelog::Opened> ShardChangelog::Open(std::shared_ptr<const CityModel> city,
                                                    const std::string& bootstrap, int32_t partition,
                                                    const std::string& path, const storage::StoreOptions& options,
                                                    MetricsRegistry* metrics) {
  const Config& cfg = city->config();
  const std::string& topic = cfg.kafka.topics.changelog;
  auto query = ingest::OffsetQuery::Create(bootstrap, cfg.kafka.properties);
  if (!query.ok()) return query.status();
  auto tail = ReadChangelogTail(**query, topic, partition);
  if (!tail.ok()) return tail.status();
  Opened out;
  std::error_code ec;
  std::filesystem::create_directories(std::filesystem::path(path).parent_path(), ec);
  if (ec) return Status::IoError("creating " + std::filesystem::path(path).parent_path().string() + ": " + ec.message());
  auto local = storage::Store::Open(path, options);
  if (!local.ok()) return local.status();
  uint64_t epoch = StoredEpoch(**local);
  // No snapshot was ever completed (the first owner died writing it): nothing to restore from.
  const bool current = tail->high == 0 || tail->base < 0 ||
                       (epoch == static_cast<uint64_t>(tail->epoch) &&
                        (*local)->change_seq() >= static_cast<uint64_t>(tail->seq));
  if (current) {
    out.store = std::move(local).value();
  } else {
    if (tail->base < 0) {
      return Status::DataLoss(topic + "/" + std::to_string(partition) + ": the last record names no snapshot");
    }
    local->reset();
    auto restored = Restore(**query, topic, partition, *tail, path, options, &epoch);
    if (!restored.ok()) return restored.status();
    out.store = std::move(restored).value();
    out.restored = true;
  }
  std::unique_ptr<ShardChangelog> log(new ShardChangelog(city, partition, metrics));
  log->query_ = std::move(query).value();
  log->base_ = tail->base;
  log->epoch_ = std::max<uint64_t>(epoch, static_cast<uint64_t>(std::max<int64_t>(tail->epoch, 0))) + 1;
  ingest::ProducerOptions po;
  po.bootstrap = bootstrap;
  po.client_id = cfg.kafka.client_id + "-changelog-" + std::to_string(partition);
  po.linger_ms = 5;
  po.properties = cfg.kafka.ProducerProperties();
  ShardChangelog* self = log.get();
  auto producer = ingest::KafkaProducer::Create(po, [self](uint64_t, const Status& st) {
    if (!st.ok()) ++self->failed_deliveries_;
  });
  if (!producer.ok()) return producer.status();
  log->producer_ = std::move(producer).value();
  log->store_ = out.store;
  // The new epoch first (in the store, so it is in the snapshot), then the snapshot.
  storage::WriteBatch wb = out.store->NewBatch();
  wb.PutMeta(kMetaEpoch, std::to_string(log->epoch_));
  CL_RETURN_IF_ERROR(out.store->Write(std::move(wb)));
  CL_RETURN_IF_ERROR(out.store->SetChangeListener(
      [self](uint64_t seq, std::string_view change_set) { self->OnChange(seq, change_set); }));
  CL_RETURN_IF_ERROR(log->Snapshot());
  out.changelog = std::move(log);
  return out;
}

Status ShardChangelog::Produce(const char* kind, uint64_t seq, std::string_view value, const std::string& part) {
  ingest::Headers headers{{"x-cl-kind", kind},
                          {"x-cl-epoch", std::to_string(epoch_)},
                          {"x-cl-seq", std::to_string(seq)},
                          {"x-cl-base", std::to_string(base_)}};
  if (!part.empty()) headers.emplace_back("x-cl-part", part);
  bytes_since_snapshot_ += value.size();
  records_->Inc();
  return producer_->Produce(topic_, key_, std::string(value), headers, 0, partition_);
}

void ShardChangelog::OnChange(uint64_t seq, std::string_view change_set) {
  if (broken_) return;  // the next snapshot covers it
  Status st;
  const size_t parts = std::max<size_t>(1, (change_set.size() + kMaxRecordBytes - 1) / kMaxRecordBytes);
  for (size_t i = 0; i < parts && st.ok(); ++i) {
    const std::string_view chunk = change_set.substr(i * kMaxRecordBytes, kMaxRecordBytes);
    st = Produce("change", seq, chunk, parts == 1 ? "" : std::to_string(i + 1) + "/" + std::to_string(parts));
  }
  if (st.ok()) return;
  failures_->Inc();
  broken_ = true;
  spdlog::warn("shard {}: changelog record not produced ({}); a new snapshot follows", partition_, st.message());
}

Status ShardChangelog::Snapshot() {
  // Everything before must be in the topic: the begin record's offset is then its end.
  CL_RETURN_IF_ERROR(Flush(kTimeoutMs));
  auto begin = query_->HighWatermark(topic_, partition_, kTimeoutMs);
  if (!begin.ok()) return begin.status();
  const uint64_t seq = store_->change_seq();
  CL_RETURN_IF_ERROR(Produce("snapshot-begin", seq, ""));
  CL_RETURN_IF_ERROR(store_->ExportChangeSets(kMaxRecordBytes, [&](std::string_view chunk) {
    return Produce("snapshot", seq, chunk);
  }));
  base_ = *begin;  // from its end record on, this snapshot is the one to restore from
  CL_RETURN_IF_ERROR(Produce("snapshot-end", seq, ""));
  CL_RETURN_IF_ERROR(Flush(kTimeoutMs));
  bytes_since_snapshot_ = 0;
  last_snapshot_ = std::chrono::steady_clock::now();
  broken_ = false;
  snapshots_->Inc();
  return Status::Ok();
}

Status ShardChangelog::Poll() {
  producer_->Poll(0);
  if (failed_deliveries_ > 0) {
    failures_->Inc(failed_deliveries_);
    failed_deliveries_ = 0;
    broken_ = true;
  }
  if (!broken_ && bytes_since_snapshot_ < kSnapshotBytes &&
      std::chrono::steady_clock::now() - last_snapshot_ < kSnapshotEvery) {
    return Status::Ok();
  }
  Status st = Snapshot();
  if (!st.ok()) spdlog::warn("shard {}: changelog snapshot failed ({}); retrying later", partition_, st.message());
  return Status::Ok();
}

Status ShardChangelog::Flush(int timeout_ms) {
  Status st = producer_->Flush(timeout_ms);
  if (failed_deliveries_ > 0) {
    failures_->Inc(failed_deliveries_);
    failed_deliveries_ = 0;
    broken_ = true;
    return Status::Unavailable("changelog records of shard " + std::to_string(partition_) + " were not delivered");
  }
  return st;
}

}  // namespace cityloop::app
