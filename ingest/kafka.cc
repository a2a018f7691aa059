// KafkaConsumer and KafkaProducer over librdkafka's C API.
#include "ingest/kafka.h"

#include <librdkafka/rdkafka.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <exception>
#include <map>
#include <mutex>
#include <string_view>

#include <nlohmann/json.hpp>

#include "ingest/kafka_internal.h"

namespace cityloop::ingest {

const std::string* Message::header(const std::string& name) const {
  for (const auto& [k, v] : headers) {
    if (k == name) return &v;
  }
  return nullptr;
}

namespace kafka_internal {

Message ToMessage(const rd_kafka_message_t* m) {
  Message msg;
  msg.topic = rd_kafka_topic_name(m->rkt);
  msg.partition = m->partition;
  msg.offset = m->offset;
  if (m->key) msg.key.assign(static_cast<const char*>(m->key), m->key_len);
  if (m->payload) msg.value.assign(static_cast<const char*>(m->payload), m->len);
  rd_kafka_timestamp_type_t tstype;
  const int64_t ts = rd_kafka_message_timestamp(m, &tstype);
  msg.timestamp_ms = ts >= 0 ? ts : 0;
  rd_kafka_headers_t* hdrs = nullptr;
  if (rd_kafka_message_headers(m, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR && hdrs) {
    const size_t n = rd_kafka_header_cnt(hdrs);
    msg.headers.reserve(n);
    for (size_t i = 0; i < n; ++i) {
      const char* name = nullptr;
      const void* val = nullptr;
      size_t size = 0;
      if (rd_kafka_header_get_all(hdrs, i, &name, &val, &size) != RD_KAFKA_RESP_ERR_NO_ERROR) break;
      msg.headers.emplace_back(name, val ? std::string(static_cast<const char*>(val), size) : std::string());
    }
  }
  return msg;
}

bool SetConf(rd_kafka_conf_t* conf, const std::string& name, const std::string& value, std::string* err) {
  char errstr[512];
  if (rd_kafka_conf_set(conf, name.c_str(), value.c_str(), errstr, sizeof errstr) != RD_KAFKA_CONF_OK) {
    if (err) *err = name + "=" + value + ": " + errstr;
    return false;
  }
  return true;
}

namespace {

void LogCallback(const rd_kafka_t* rk, int level, const char* fac, const char* buf) {
  const char* name = rk ? rd_kafka_name(rk) : "rdkafka";
  // The broker's own handle has no bootstrap.servers by design.
  if (std::strcmp(fac, "CONFWARN") == 0 && std::strstr(buf, "bootstrap.servers")) level = 7;
  if (level <= 3) {
    spdlog::error("rdkafka {} {}: {}", name, fac, buf);
  } else if (level == 4) {
    spdlog::warn("rdkafka {} {}: {}", name, fac, buf);
  } else if (level <= 6) {
    spdlog::info("rdkafka {} {}: {}", name, fac, buf);
  } else {
    spdlog::debug("rdkafka {} {}: {}", name, fac, buf);
  }
}

// The consumers' view of the cluster, for KafkaBrokersReachable(): tracked
// handle -> whether it lost every broker. Updated from librdkafka callbacks
// (on the thread polling that handle), read from any thread.
class Links {
 public:
  void Track(const rd_kafka_t* rk) {
    std::lock_guard<std::mutex> lock(mu_);
    down_[rk] = false;
  }
  void Untrack(const rd_kafka_t* rk) {
    std::lock_guard<std::mutex> lock(mu_);
    down_.erase(rk);
  }
  // Only for tracked handles: others (offset queries, the broker) never report coming back.
  void Set(const rd_kafka_t* rk, bool down) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = down_.find(rk);
    if (it == down_.end() || it->second == down) return;
    it->second = down;
    if (down) {
      spdlog::warn("kafka: {} lost every broker connection: not ready until one is back", rd_kafka_name(rk));
    } else {
      spdlog::info("kafka: {} is connected to a broker again", rd_kafka_name(rk));
    }
  }
  bool AllUp() const {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [rk, down] : down_) {
      if (down) return false;
    }
    return true;
  }

 private:
  mutable std::mutex mu_;
  std::map<const rd_kafka_t*, bool> down_;
};

Links& TheLinks() {
  static Links* links = new Links();  // never destroyed: callbacks may run during exit
  return *links;
}

void ErrorCallback(rd_kafka_t* rk, int err, const char* reason, void* /*opaque*/) {
  const auto code = static_cast<rd_kafka_resp_err_t>(err);
  if (code == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN) TheLinks().Set(rk, true);
  if (code == RD_KAFKA_RESP_ERR__FATAL) {
    char buf[512];
    rd_kafka_resp_err_t orig = rd_kafka_fatal_error(rk, buf, sizeof buf);
    spdlog::error("rdkafka {}: fatal error {}: {}", rd_kafka_name(rk), rd_kafka_err2name(orig), buf);
  } else {
    spdlog::warn("rdkafka {}: {}: {}", rd_kafka_name(rk), rd_kafka_err2name(code), reason ? reason : "");
  }
}

}  // namespace

void InstallLogger(rd_kafka_conf_t* conf) {
  rd_kafka_conf_set_log_cb(conf, &LogCallback);
  rd_kafka_conf_set_error_cb(conf, &ErrorCallback);
}

namespace {

// statistics.interval.ms: a broker in state UP means the handle reaches the cluster again.
int StatsCallback(rd_kafka_t* rk, char* json, size_t json_len, void* /*opaque*/) {
  const auto stats = nlohmann::json::parse(std::string_view(json, json_len), nullptr, false);
  if (stats.is_object() && stats.contains("brokers") && stats["brokers"].is_object()) {
    for (const auto& [name, b] : stats["brokers"].items()) {
      if (b.is_object() && b.value("state", "") == "UP") {
        TheLinks().Set(rk, false);
        break;
      }
    }
  }
  return 0;  // librdkafka frees json
}

}  // namespace

void TrackConnectivity(rd_kafka_conf_t* conf) { rd_kafka_conf_set_stats_cb(conf, &StatsCallback); }
void TrackHandle(const rd_kafka_t* rk) { TheLinks().Track(rk); }
void UntrackHandle(const rd_kafka_t* rk) { TheLinks().Untrack(rk); }
void MarkReachable(const rd_kafka_t* rk) { TheLinks().Set(rk, false); }

}  // namespace kafka_internal

namespace {

using kafka_internal::SetConf;

std::string Err(rd_kafka_resp_err_t e) { return std::string(rd_kafka_err2name(e)) + ": " + rd_kafka_err2str(e); }

// Builds a conf from defaults, then the caller's properties, then the values
// the code relies on (those cannot be overridden).
Result<rd_kafka_conf_t*> MakeConf(const std::vector<std::pair<std::string, std::string>>& defaults,
                                  const std::map<std::string, std::string>& properties,
                                  const std::vector<std::pair<std::string, std::string>>& forced) {
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  std::string err;
  auto apply = [&](const std::string& k, const std::string& v) {
    if (SetConf(conf, k, v, &err)) return true;
    rd_kafka_conf_destroy(conf);
    return false;
  };
  for (const auto& [k, v] : defaults) {
    if (!apply(k, v)) return Status::InvalidArgument("kafka property " + err);
  }
  for (const auto& [k, v] : properties) {
    if (!apply(k, v)) return Status::InvalidArgument("kafka property " + err);
  }
  for (const auto& [k, v] : forced) {
    if (!apply(k, v)) return Status::InvalidArgument("kafka property " + err);
  }
  kafka_internal::InstallLogger(conf);
  return conf;
}

// Runs a user callback from inside a librdkafka callback: nothing may unwind
// through C frames.
template <typename F>
void Guarded(const char* what, F&& f) {
  try {
    f();
  } catch (const std::exception& e) {
    spdlog::error("kafka: exception in {}: {}", what, e.what());
  } catch (...) {
    spdlog::error("kafka: unknown exception in {}", what);
  }
}

std::vector<PartitionOffset> ToOffsets(const rd_kafka_topic_partition_list_t* list) {
  std::vector<PartitionOffset> out;
  if (!list) return out;
  out.reserve(static_cast<size_t>(list->cnt));
  for (int i = 0; i < list->cnt; ++i) {
    const rd_kafka_topic_partition_t& p = list->elems[i];
    out.push_back({p.topic, p.partition, p.offset >= 0 ? p.offset : -1});
  }
  return out;
}

// Consumer errors that mean the client cannot go on.
bool IsFatalConsumerError(rd_kafka_t* rk, rd_kafka_resp_err_t e) {
  if (e == RD_KAFKA_RESP_ERR__FATAL) return true;
  char buf[8];
  return rd_kafka_fatal_error(rk, buf, sizeof buf) != RD_KAFKA_RESP_ERR_NO_ERROR;
}

// ---------------------------------------------------------------- consumer

class ConsumerImpl final : public KafkaConsumer {
 public:
  ConsumerImpl(OffsetLookup lookup, RebalanceListener listener)
      : lookup_(std::move(lookup)), listener_(std::move(listener)) {}
  ~ConsumerImpl() override { Close(); }

  Status Init(const ConsumerOptions& o) {
    if (o.bootstrap.empty()) return Status::InvalidArgument("consumer: empty bootstrap");
    if (o.group_id.empty() && !o.assign_all_partitions) return Status::InvalidArgument("consumer: empty group id");
    if (o.topics.empty()) return Status::InvalidArgument("consumer: no topics");
    auto conf = MakeConf(
        {
            {"bootstrap.servers", o.bootstrap},
            {"group.id", o.group_id.empty() ? std::string("cityloop-reader") : o.group_id},
            {"client.id", o.client_id},
            {"auto.offset.reset", "earliest"},
            {"log.connection.close", "false"},
            {"enable.partition.eof", "false"},
            // Kafka's classic 10 s rather than librdkafka's 45 s: a dead
            // member is noticed sooner, and the mock cluster makes a joining
            // member wait up to session.timeout.ms - 1 s after a member left.
            {"session.timeout.ms", "10000"},
            {"heartbeat.interval.ms", "1000"},
            // A fetch returns as soon as data is there; this bounds the wait
            // of one with nothing new. librdkafka's 500 ms default puts up to
            // 500 ms into ingest-to-dispatch latency whenever a partition is idle.
            {"fetch.wait.max.ms", "5"},
            // librdkafka 2.0.2 stops fetching a partition once its prefetch
            // queue passes queued.min.messages and re-checks only ~1 s later,
            // even when the queue drained long before: the consumer then sits
            // idle (the mock broker answers one whole record batch per
            // partition per fetch, so 100 000 is reached at once). Memory
            // stays bounded by queued.max.messages.kbytes (64 MiB).
            {"queued.min.messages", "1000000"},
            // Statistics once a second tell KafkaBrokersReachable() when a
            // lost cluster is back (0 disables them: then only a fetched message does).
            {"statistics.interval.ms", "1000"},
        },
        o.properties, {{"enable.auto.commit", "false"}, {"enable.auto.offset.store", "false"}});
    if (!conf.ok()) return conf.status();
    rd_kafka_conf_set_opaque(*conf, this);
    rd_kafka_conf_set_rebalance_cb(*conf, &ConsumerImpl::RebalanceTrampoline);
    rd_kafka_conf_set_offset_commit_cb(*conf, &ConsumerImpl::CommitTrampoline);
    kafka_internal::TrackConnectivity(*conf);
    char errstr[512];
    rk_ = rd_kafka_new(RD_KAFKA_CONSUMER, *conf, errstr, sizeof errstr);
    if (!rk_) {
      rd_kafka_conf_destroy(*conf);
      return Status::InvalidArgument(std::string("consumer: rd_kafka_new: ") + errstr);
    }
    kafka_internal::TrackHandle(rk_);
    // Error, log and commit events are served by consumer_poll.
    rd_kafka_poll_set_consumer(rk_);
    if (o.assign_all_partitions) return AssignAll(o.topics);
    rd_kafka_topic_partition_list_t* topics =
        rd_kafka_topic_partition_list_new(static_cast<int>(o.topics.size()));
    for (const auto& t : o.topics) rd_kafka_topic_partition_list_add(topics, t.c_str(), RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t e = rd_kafka_subscribe(rk_, topics);
    rd_kafka_topic_partition_list_destroy(topics);
    if (e) return Status::InvalidArgument("consumer: subscribe: " + Err(e));
    return Status::Ok();
  }

  Status Poll(size_t max_messages, int timeout_ms, std::vector<Message>* out) override {
    if (!rk_) return Status::FailedPrecondition("consumer is closed");
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(std::max(timeout_ms, 0));
    size_t got = 0;
    while (got < max_messages) {
      int wait = 0;
      if (got == 0) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        wait = static_cast<int>(std::max<int64_t>(left.count(), 0));
      }
      rd_kafka_message_t* m = rd_kafka_consumer_poll(rk_, wait);
      if (!m) {
        if (got > 0 || wait == 0) break;
        continue;  // woke early (e.g. after a rebalance); wait out the rest
      }
      if (m->err) {
        const rd_kafka_resp_err_t e = m->err;
        std::string what = m->rkt ? std::string(rd_kafka_topic_name(m->rkt)) + "/" + std::to_string(m->partition)
                                  : std::string("consumer");
        std::string msg = rd_kafka_message_errstr(m);
        rd_kafka_message_destroy(m);
        if (e == RD_KAFKA_RESP_ERR__PARTITION_EOF) continue;
        if (IsFatalConsumerError(rk_, e)) {
          spdlog::error("kafka consumer: fatal {}: {}: {}", rd_kafka_err2name(e), what, msg);
          return Status::Internal("kafka consumer: " + Err(e) + ": " + msg);
        }
        transient_errors_.fetch_add(1, std::memory_order_relaxed);
        spdlog::warn("kafka consumer: {}: {}: {}", rd_kafka_err2name(e), what, msg);
        continue;
      }
      out->push_back(kafka_internal::ToMessage(m));
      rd_kafka_message_destroy(m);
      ++got;
    }
    if (got > 0) kafka_internal::MarkReachable(rk_);
    return Status::Ok();
  }

  Status CommitAsync(const std::vector<PartitionOffset>& offsets) override {
    if (!rk_) return Status::FailedPrecondition("consumer is closed");
    if (offsets.empty()) return Status::Ok();
    rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(static_cast<int>(offsets.size()));
    for (const auto& po : offsets) {
      rd_kafka_topic_partition_list_add(list, po.topic.c_str(), po.partition)->offset = po.next_offset;
    }
    rd_kafka_resp_err_t e = rd_kafka_commit(rk_, list, 1);
    rd_kafka_topic_partition_list_destroy(list);
    if (e) return Status::Unavailable("kafka commit: " + Err(e));
    return Status::Ok();
  }

  Status Pause() override { return SetPaused(true); }
  Status Resume() override { return SetPaused(false); }

  // The current assignment, and the same as a librdkafka list (null when
  // there is nothing to ask about; the caller destroys it).
  std::vector<PartitionOffset> AssignmentList(rd_kafka_topic_partition_list_t** list) const {
    std::vector<PartitionOffset> out;
    {
      std::lock_guard<std::mutex> lock(mu_);
      out = assignment_;
    }
    *list = nullptr;
    if (out.empty() || !rk_) return out;
    *list = rd_kafka_topic_partition_list_new(static_cast<int>(out.size()));
    for (const auto& po : out) rd_kafka_topic_partition_list_add(*list, po.topic.c_str(), po.partition);
    return out;
  }

  std::vector<PartitionOffset> Assignment() const override {
    rd_kafka_topic_partition_list_t* list = nullptr;
    std::vector<PartitionOffset> out = AssignmentList(&list);
    if (!list) return out;
    // Where each partition is now: the offset after the last message returned.
    if (rd_kafka_position(rk_, list) == RD_KAFKA_RESP_ERR_NO_ERROR) {
      for (int i = 0; i < list->cnt; ++i) {
        if (list->elems[i].offset >= 0) out[static_cast<size_t>(i)].next_offset = list->elems[i].offset;
      }
    }
    rd_kafka_topic_partition_list_destroy(list);
    return out;
  }

  std::optional<int64_t> CachedHighWatermark(const std::string& topic, int32_t partition) const override {
    int64_t low = -1, high = -1;
    if (rd_kafka_get_watermark_offsets(rk_, topic.c_str(), partition, &low, &high) != RD_KAFKA_RESP_ERR_NO_ERROR ||
        high < 0) {
      return std::nullopt;  // unknown partition, or RD_KAFKA_OFFSET_INVALID: no fetch answered yet
    }
    return high;
  }

  Result<std::vector<PartitionOffset>> Committed(int timeout_ms) const override {
    rd_kafka_topic_partition_list_t* list = nullptr;
    std::vector<PartitionOffset> out = AssignmentList(&list);
    if (!list) return out;
    const rd_kafka_resp_err_t e = rd_kafka_committed(rk_, list, timeout_ms);
    for (int i = 0; i < list->cnt && !e; ++i) {
      const int64_t o = list->elems[i].offset;
      out[static_cast<size_t>(i)].next_offset = o >= 0 ? o : -1;
    }
    rd_kafka_topic_partition_list_destroy(list);
    if (e) return Status::Unavailable("kafka consumer: committed offsets: " + Err(e));
    return out;
  }

  void Close() override {
    if (!rk_) return;
    rd_kafka_resp_err_t e = rd_kafka_consumer_close(rk_);
    if (e) spdlog::warn("kafka consumer: close: {}", Err(e));
    kafka_internal::UntrackHandle(rk_);
    rd_kafka_destroy(rk_);
    rk_ = nullptr;
  }

 private:
  // Manual assignment of every partition of topics, from the lookup's offsets.
  Status AssignAll(const std::vector<std::string>& topics) {
    const rd_kafka_metadata_t* md = nullptr;
    rd_kafka_resp_err_t e = rd_kafka_metadata(rk_, 1, nullptr, &md, 10000);
    if (e) return Status::Unavailable("consumer: metadata: " + Err(e));
    rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(16);
    for (int t = 0; t < md->topic_cnt; ++t) {
      const auto& mt = md->topics[t];
      if (std::find(topics.begin(), topics.end(), mt.topic) == topics.end()) continue;
      for (int i = 0; i < mt.partition_cnt; ++i) {
        std::optional<int64_t> start;
        if (lookup_) Guarded("OffsetLookup", [&] { start = lookup_(mt.topic, mt.partitions[i].id); });
        rd_kafka_topic_partition_list_add(list, mt.topic, mt.partitions[i].id)->offset =
            start ? *start : RD_KAFKA_OFFSET_BEGINNING;
      }
    }
    rd_kafka_metadata_destroy(md);
    if (list->cnt == 0) {
      rd_kafka_topic_partition_list_destroy(list);
      return Status::NotFound("consumer: none of the topics exists");
    }
    e = rd_kafka_assign(rk_, list);
    std::vector<PartitionOffset> added = ToOffsets(list);
    rd_kafka_topic_partition_list_destroy(list);
    if (e) return Status::Unavailable("consumer: assign: " + Err(e));
    std::lock_guard<std::mutex> lock(mu_);
    assignment_ = std::move(added);
    return Status::Ok();
  }

  Status SetPaused(bool pause) {
    if (!rk_) return Status::FailedPrecondition("consumer is closed");
    paused_ = pause;
    rd_kafka_topic_partition_list_t* list = nullptr;
    rd_kafka_resp_err_t e = rd_kafka_assignment(rk_, &list);
    if (e) return Status::Unavailable("kafka assignment: " + Err(e));
    e = pause ? rd_kafka_pause_partitions(rk_, list) : rd_kafka_resume_partitions(rk_, list);
    rd_kafka_topic_partition_list_destroy(list);
    if (e) return Status::Unavailable(std::string(pause ? "kafka pause: " : "kafka resume: ") + Err(e));
    return Status::Ok();
  }

  static void RebalanceTrampoline(rd_kafka_t* rk, rd_kafka_resp_err_t err,
                                  rd_kafka_topic_partition_list_t* partitions, void* opaque) {
    static_cast<ConsumerImpl*>(opaque)->OnRebalance(rk, err, partitions);
  }

  void OnRebalance(rd_kafka_t* rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t* partitions) {
    // NULL while the consumer is closing (its group left).
    const char* protocol = rd_kafka_rebalance_protocol(rk);
    const bool cooperative = protocol && std::string_view(protocol) == "COOPERATIVE";
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
      for (int i = 0; i < partitions->cnt; ++i) {
        rd_kafka_topic_partition_t& p = partitions->elems[i];
        std::optional<int64_t> start;
        if (lookup_) Guarded("OffsetLookup", [&] { start = lookup_(p.topic, p.partition); });
        p.offset = start ? *start : RD_KAFKA_OFFSET_INVALID;  // invalid: committed, else auto.offset.reset
      }
      rd_kafka_resp_err_t e = RD_KAFKA_RESP_ERR_NO_ERROR;
      if (cooperative) {
        rd_kafka_error_t* error = rd_kafka_incremental_assign(rk, partitions);
        if (error) {
          spdlog::error("kafka consumer: incremental assign: {}", rd_kafka_error_string(error));
          rd_kafka_error_destroy(error);
        }
      } else {
        e = rd_kafka_assign(rk, partitions);
        if (e) spdlog::error("kafka consumer: assign: {}", Err(e));
      }
      if (paused_) rd_kafka_pause_partitions(rk, partitions);
      std::vector<PartitionOffset> added = ToOffsets(partitions);
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (!cooperative) assignment_.clear();
        for (const auto& po : added) assignment_.push_back(po);
      }
      spdlog::info("kafka consumer: assigned {} partition(s)", added.size());
      if (listener_) Guarded("RebalanceListener", [&] { listener_(true, added); });
    } else {
      if (err != RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS) {
        spdlog::error("kafka consumer: rebalance error: {}", Err(err));
      }
      std::vector<PartitionOffset> removed = ToOffsets(partitions);
      // Tell the owner first so it can flush and commit while it still owns them.
      if (listener_) Guarded("RebalanceListener", [&] { listener_(false, removed); });
      if (cooperative) {
        rd_kafka_error_t* error = rd_kafka_incremental_unassign(rk, partitions);
        if (error) {
          spdlog::error("kafka consumer: incremental unassign: {}", rd_kafka_error_string(error));
          rd_kafka_error_destroy(error);
        }
      } else {
        rd_kafka_assign(rk, nullptr);
      }
      std::lock_guard<std::mutex> lock(mu_);
      if (!cooperative) {
        assignment_.clear();
      } else {
        std::erase_if(assignment_, [&](const PartitionOffset& a) {
          for (const auto& r : removed) {
            if (r.topic == a.topic && r.partition == a.partition) return true;
          }
          return false;
        });
      }
      spdlog::info("kafka consumer: revoked {} partition(s)", removed.size());
    }
  }

  static void CommitTrampoline(rd_kafka_t* /*rk*/, rd_kafka_resp_err_t err,
                               rd_kafka_topic_partition_list_t* offsets, void* /*opaque*/) {
    if (err == RD_KAFKA_RESP_ERR__NO_OFFSET) return;
    if (err) {
      spdlog::warn("kafka consumer: offset commit failed: {}", Err(err));
      return;
    }
    for (int i = 0; offsets && i < offsets->cnt; ++i) {
      if (offsets->elems[i].err) {
        spdlog::warn("kafka consumer: offset commit {}/{} failed: {}", offsets->elems[i].topic,
                     offsets->elems[i].partition, Err(offsets->elems[i].err));
      }
    }
  }

  rd_kafka_t* rk_ = nullptr;
  OffsetLookup lookup_;
  RebalanceListener listener_;
  bool paused_ = false;  // polling thread only (Pause/Resume/rebalance)
  std::atomic<int64_t> transient_errors_{0};
  mutable std::mutex mu_;
  std::vector<PartitionOffset> assignment_;  // next_offset: the start chosen on assignment, -1 = from Kafka
};

// ---------------------------------------------------------------- producer

static_assert(sizeof(void*) >= sizeof(uint64_t), "the delivery opaque travels in msg_opaque");

class ProducerImpl final : public KafkaProducer {
 public:
  explicit ProducerImpl(DeliveryCallback cb) : on_delivery_(std::move(cb)) {}
  ~ProducerImpl() override {
    if (!rk_) return;
    if (const int n = rd_kafka_outq_len(rk_); n > 0) {
      spdlog::warn("kafka producer: destroyed with {} message(s)/request(s) not delivered", n);
    }
    rd_kafka_destroy(rk_);
  }

  Status Init(const ProducerOptions& o) {
    if (o.bootstrap.empty()) return Status::InvalidArgument("producer: empty bootstrap");
    auto conf = MakeConf(
        {
            {"bootstrap.servers", o.bootstrap},
            {"client.id", o.client_id},
            {"linger.ms", std::to_string(std::max(o.linger_ms, 0))},
            {"partitioner", "consistent_random"},
            {"log.connection.close", "false"},
        },
        o.properties, {{"acks", "all"}, {"enable.idempotence", "true"}});
    if (!conf.ok()) return conf.status();
    rd_kafka_conf_set_opaque(*conf, this);
    rd_kafka_conf_set_dr_msg_cb(*conf, &ProducerImpl::DeliveryTrampoline);
    char errstr[512];
    rk_ = rd_kafka_new(RD_KAFKA_PRODUCER, *conf, errstr, sizeof errstr);
    if (!rk_) {
      rd_kafka_conf_destroy(*conf);
      return Status::InvalidArgument(std::string("producer: rd_kafka_new: ") + errstr);
    }
    return Status::Ok();
  }

  Status Produce(const std::string& topic, const std::string& key, const std::string& value, const Headers& headers,
                 uint64_t opaque, int32_t partition, int64_t timestamp_ms) override {
    // Bounded wait for room when the local queue is full: ~1 s of 10 ms polls.
    constexpr int kFullRetries = 100;
    constexpr int kFullPollMs = 10;
    for (int attempt = 0;; ++attempt) {
      rd_kafka_headers_t* hdrs = nullptr;
      if (!headers.empty()) {
        hdrs = rd_kafka_headers_new(headers.size());
        for (const auto& [k, v] : headers) {
          rd_kafka_header_add(hdrs, k.data(), static_cast<ssize_t>(k.size()), v.data(),
                              static_cast<ssize_t>(v.size()));
        }
      }
      rd_kafka_vu_t vu[8];
      size_t n = 0;
      vu[n].vtype = RD_KAFKA_VTYPE_TOPIC;
      vu[n++].u.cstr = topic.c_str();
      vu[n].vtype = RD_KAFKA_VTYPE_PARTITION;
      vu[n++].u.i32 = partition < 0 ? RD_KAFKA_PARTITION_UA : partition;
      vu[n].vtype = RD_KAFKA_VTYPE_KEY;
      vu[n].u.mem.ptr = key.empty() ? nullptr : const_cast<char*>(key.data());
      vu[n++].u.mem.size = key.size();
      vu[n].vtype = RD_KAFKA_VTYPE_VALUE;
      vu[n].u.mem.ptr = const_cast<char*>(value.data());
      vu[n++].u.mem.size = value.size();
      vu[n].vtype = RD_KAFKA_VTYPE_MSGFLAGS;
      vu[n++].u.i = RD_KAFKA_MSG_F_COPY;
      vu[n].vtype = RD_KAFKA_VTYPE_OPAQUE;
      vu[n++].u.ptr = reinterpret_cast<void*>(static_cast<uintptr_t>(opaque));
      if (timestamp_ms > 0) {
        vu[n].vtype = RD_KAFKA_VTYPE_TIMESTAMP;
        vu[n++].u.i64 = timestamp_ms;
      }
      if (hdrs) {
        vu[n].vtype = RD_KAFKA_VTYPE_HEADERS;
        vu[n++].u.headers = hdrs;
      }
      rd_kafka_error_t* error = rd_kafka_produceva(rk_, vu, n);
      if (!error) return Status::Ok();  // librdkafka owns hdrs now
      if (hdrs) rd_kafka_headers_destroy(hdrs);
      const rd_kafka_resp_err_t e = rd_kafka_error_code(error);
      std::string what = rd_kafka_error_string(error);
      rd_kafka_error_destroy(error);
      if (e == RD_KAFKA_RESP_ERR__QUEUE_FULL && attempt < kFullRetries) {
        rd_kafka_poll(rk_, kFullPollMs);
        continue;
      }
      if (e == RD_KAFKA_RESP_ERR__QUEUE_FULL) return Status::Unavailable("kafka produce: local queue full");
      if (e == RD_KAFKA_RESP_ERR__FATAL) return Status::Internal("kafka produce: " + what);
      if (e == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE || e == RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION ||
          e == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC || e == RD_KAFKA_RESP_ERR__INVALID_ARG) {
        return Status::InvalidArgument("kafka produce to " + topic + ": " + what);
      }
      return Status::Unavailable("kafka produce to " + topic + ": " + what);
    }
  }

  void Poll(int timeout_ms) override { rd_kafka_poll(rk_, timeout_ms); }

  Status Flush(int timeout_ms) override {
    rd_kafka_resp_err_t e = rd_kafka_flush(rk_, timeout_ms);
    if (e == RD_KAFKA_RESP_ERR_NO_ERROR) return Status::Ok();
    return Status::Unavailable("kafka flush: " + std::to_string(rd_kafka_outq_len(rk_)) + " still queued (" +
                               Err(e) + ")");
  }

  size_t InFlight() const override {
    const int n = rd_kafka_outq_len(rk_);
    return n > 0 ? static_cast<size_t>(n) : 0;
  }

 private:
  static void DeliveryTrampoline(rd_kafka_t* /*rk*/, const rd_kafka_message_t* m, void* opaque) {
    static_cast<ProducerImpl*>(opaque)->OnDelivery(m);
  }

  void OnDelivery(const rd_kafka_message_t* m) {
    if (!on_delivery_) {
      if (m->err) spdlog::warn("kafka producer: delivery failed: {}", Err(m->err));
      return;
    }
    const uint64_t opaque = static_cast<uint64_t>(reinterpret_cast<uintptr_t>(m->_private));
    Status st;
    if (m->err == RD_KAFKA_RESP_ERR__FATAL) {
      st = Status::Internal("kafka delivery: " + Err(m->err));
    } else if (m->err == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE || m->err == RD_KAFKA_RESP_ERR_INVALID_MSG_SIZE ||
               m->err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) {
      st = Status::InvalidArgument("kafka delivery: " + Err(m->err));
    } else if (m->err) {
      st = Status::Unavailable("kafka delivery: " + Err(m->err));
    }
    Guarded("DeliveryCallback", [&] { on_delivery_(opaque, st); });
  }

  rd_kafka_t* rk_ = nullptr;
  DeliveryCallback on_delivery_;
};

}  // namespace

Result<std::unique_ptr<KafkaConsumer>> KafkaConsumer::Create(const ConsumerOptions& options, OffsetLookup lookup,
                                                            RebalanceListener listener) {
  auto c = std::make_unique<ConsumerImpl>(std::move(lookup), std::move(listener));
  CL_RETURN_IF_ERROR(c->Init(options));
  return std::unique_ptr<KafkaConsumer>(std::move(c));
}

Result<std::unique_ptr<KafkaProducer>> KafkaProducer::Create(const ProducerOptions& options,
                                                             DeliveryCallback on_delivery) {
  auto p = std::make_unique<ProducerImpl>(std::move(on_delivery));
  CL_RETURN_IF_ERROR(p->Init(options));
  return std::unique_ptr<KafkaProducer>(std::move(p));
}

bool KafkaBrokersReachable() { return kafka_internal::TheLinks().AllUp(); }

Result<int> PartitionCount(const std::string& bootstrap, const std::string& topic, int timeout_ms) {
  // Asks for every topic rather than this one: a Metadata request naming an
  // unknown topic auto-creates it on brokers that allow that, and the mock
  // cluster always does (it speaks Metadata v2, which has no
  // AllowAutoTopicCreation flag).
  auto conf = MakeConf(
      {{"bootstrap.servers", bootstrap}, {"client.id", "cityloop-metadata"}, {"log.connection.close", "false"}},
      {}, {{"allow.auto.create.topics", "false"}});
  if (!conf.ok()) return conf.status();
  char errstr[512];
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_PRODUCER, *conf, errstr, sizeof errstr);
  if (!rk) {
    rd_kafka_conf_destroy(*conf);
    return Status::InvalidArgument(std::string("metadata client: ") + errstr);
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(std::max(timeout_ms, 0));
  Result<int> result = Status::Unavailable("metadata for " + topic + ": timed out");
  while (true) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) break;
    const rd_kafka_metadata_t* md = nullptr;
    rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 1, nullptr, &md, static_cast<int>(left.count()));
    if (e) {
      result = Status::Unavailable("metadata for " + topic + ": " + Err(e));
      if (e == RD_KAFKA_RESP_ERR__TIMED_OUT) break;
      rd_kafka_poll(rk, 50);
      continue;
    }
    bool retry = false;
    result = Status::NotFound("topic " + topic + " does not exist");
    for (int i = 0; i < md->topic_cnt; ++i) {
      const rd_kafka_metadata_topic_t& t = md->topics[i];
      if (topic != t.topic) continue;
      if (t.err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) {
        result = Status::NotFound("topic " + topic + " does not exist");
      } else if (t.err == RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE || (t.err == 0 && t.partition_cnt == 0)) {
        retry = true;  // being created
      } else if (t.err) {
        result = Status::Unavailable("metadata for " + topic + ": " + Err(t.err));
      } else {
        result = t.partition_cnt;
      }
    }
    rd_kafka_metadata_destroy(md);
    if (!retry) break;
    rd_kafka_poll(rk, 50);
  }
  rd_kafka_destroy(rk);
  return result;
}

}  // namespace cityloop::ingest
