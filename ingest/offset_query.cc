#include "ingest/offset_query.h"

#include <librdkafka/rdkafka.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <optional>
#include <utility>
#include <vector>

#include "ingest/kafka.h"
#include "ingest/kafka_internal.h"

namespace cityloop::ingest {
namespace {

using Properties = std::map<std::string, std::string>;

struct Watermarks {
  int64_t low = 0;
  int64_t high = 0;
};

// The first message at or after some offset: where it is and its timestamp.
struct Probe {
  int64_t offset = 0;
  int64_t timestamp_ms = 0;
};

std::string Where(const std::string& topic, int32_t partition) { return topic + "/" + std::to_string(partition); }

// bootstrap, client.id and quiet connection closes, then the caller's
// properties, then `forced` (what the code relies on).
Result<rd_kafka_conf_t*> MakeConf(const std::string& bootstrap, const std::string& client_id,
                                  const Properties& properties, const Properties& forced = {}) {
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  kafka_internal::InstallLogger(conf);
  std::string err;
  bool ok = kafka_internal::SetConf(conf, "bootstrap.servers", bootstrap, &err) &&
            kafka_internal::SetConf(conf, "client.id", client_id, &err) &&
            kafka_internal::SetConf(conf, "log.connection.close", "false", &err);
  for (const auto& [k, v] : properties) ok = ok && kafka_internal::SetConf(conf, k, v, &err);
  for (const auto& [k, v] : forced) ok = ok && kafka_internal::SetConf(conf, k, v, &err);
  if (!ok) {
    rd_kafka_conf_destroy(conf);
    return Status::InvalidArgument(err);
  }
  return conf;
}

Result<Watermarks> QueryWatermarks(rd_kafka_t* rk, const std::string& topic, int32_t partition, int timeout_ms) {
  // With every consumer of this process cut off from the cluster, the query
  // would only wait out its timeout: the engine's lag gauges ask for every
  // assigned partition in turn, which held its loop for seconds per
  // partition during a broker outage (docs/RELIABILITY.md).
  if (!KafkaBrokersReachable()) {
    return Status::Unavailable("watermarks of " + Where(topic, partition) + ": the Kafka cluster is unreachable");
  }
  Watermarks w;
  rd_kafka_resp_err_t e = rd_kafka_query_watermark_offsets(rk, topic.c_str(), partition, &w.low, &w.high, timeout_ms);
  if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return Status::Unavailable("watermarks of " + Where(topic, partition) + ": " + rd_kafka_err2str(e));
  }
  return w;
}

// Reads the first message of topic/partition at or after `offset`; nullopt
// when the partition ends before one. Waits at most timeout_ms.
Result<std::optional<Probe>> ReadAt(rd_kafka_t* reader, const std::string& topic, int32_t partition, int64_t offset,
                                    int timeout_ms) {
  rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(list, topic.c_str(), partition)->offset = offset;
  rd_kafka_resp_err_t e = rd_kafka_assign(reader, list);
  rd_kafka_topic_partition_list_destroy(list);
  const std::string what = Where(topic, partition) + " at offset " + std::to_string(offset);
  if (e != RD_KAFKA_RESP_ERR_NO_ERROR) return Status::Unavailable("reading " + what + ": " + rd_kafka_err2str(e));
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(std::max(timeout_ms, 0));
  std::string last_error = "timed out";
  while (true) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return Status::Unavailable("reading " + what + ": " + last_error);
    rd_kafka_message_t* m = rd_kafka_consumer_poll(reader, static_cast<int>(left.count()));
    if (!m) continue;
    // Only this partition is assigned; anything else (another partition, an
    // offset before the one asked for) is left over from an earlier probe.
    const bool ours = m->rkt && topic == rd_kafka_topic_name(m->rkt) && m->partition == partition &&
                      m->offset >= offset;
    std::optional<Probe> found;
    bool end = false;
    if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
      end = ours;
    } else if (m->err) {
      last_error = std::string(rd_kafka_err2name(m->err)) + ": " + rd_kafka_message_errstr(m);
      char buf[8];
      if (rd_kafka_fatal_error(reader, buf, sizeof buf) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        rd_kafka_message_destroy(m);
        return Status::Internal("reading " + what + ": " + last_error);
      }
      // Otherwise transient: librdkafka retries the fetch by itself.
    } else if (ours) {
      rd_kafka_timestamp_type_t type;
      found = Probe{m->offset, rd_kafka_message_timestamp(m, &type)};
      if (type == RD_KAFKA_TIMESTAMP_NOT_AVAILABLE || found->timestamp_ms < 0) {
        rd_kafka_message_destroy(m);
        return Status::FailedPrecondition("message " + Where(topic, partition) + "@" + std::to_string(found->offset) +
                                          " has no timestamp");
      }
    }
    rd_kafka_message_destroy(m);
    if (end) return std::optional<Probe>();
    if (found) return found;
  }
}

// The first offset in [w.low, w.high) whose message has a timestamp >= ts_ms,
// else w.high, by binary search. The predicate searched for over positions p
// is "the first message at or after p is >= ts_ms, or there is none before
// the end": false below the answer and true from it on (timestamps do not
// decrease), so the search stops on the answer itself, also within a run of
// equal timestamps, with no stepping back. Probing by position rather than
// by message copes with offsets that hold no message (compaction,
// transaction markers): a probe returns the next message that exists.
Result<int64_t> SearchByTime(rd_kafka_t* reader, const std::string& topic, int32_t partition, Watermarks w,
                             int64_t ts_ms, int timeout_ms) {
  int64_t lo = w.low, hi = w.high;
  int64_t answer = w.high;  // the first message at or after hi (or the end)
  while (lo < hi) {
    const int64_t mid = lo + (hi - lo) / 2;
    auto probe = ReadAt(reader, topic, partition, mid, timeout_ms);
    if (!probe.ok()) return probe.status();
    const std::optional<Probe>& p = *probe;
    if (!p || p->offset >= hi) {
      hi = mid;  // nothing in [mid, hi): the first message from mid on is the one from hi on
    } else if (p->timestamp_ms >= ts_ms) {
      hi = mid;
      answer = p->offset;
    } else {
      lo = p->offset + 1;  // this message and everything before it are older
    }
  }
  return answer;
}

}  // namespace

struct OffsetQuery::Impl {
  std::string bootstrap;
  Properties properties;
  rd_kafka_t* rk = nullptr;      // metadata, watermarks, ListOffsets
  rd_kafka_t* reader = nullptr;  // consumer for OffsetsForTime's probes, made when first needed

  ~Impl() {
    // The reader never joins its group nor commits: nothing for a consumer
    // close to do but wait on the group coordinator (seconds).
    if (reader) rd_kafka_destroy_flags(reader, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
    if (rk) rd_kafka_destroy(rk);
  }

  Result<rd_kafka_t*> Reader() {
    if (reader) return reader;
    auto conf = MakeConf(bootstrap, "cityloop-offset-query", properties,
                         {
                             // rd_kafka_assign needs a group; it is never joined
                             // (no subscribe) and nothing is committed.
                             {"group.id", "cityloop-offset-query"},
                             {"enable.auto.commit", "false"},
                             {"enable.auto.offset.store", "false"},
                             // A probe past the last message ends at once.
                             {"enable.partition.eof", "true"},
                             // A probe below the log start (retention moved it
                             // meanwhile) reads the first message still held,
                             // which is what the search asks for.
                             {"auto.offset.reset", "earliest"},
                             // Uncommitted messages count, as in the high
                             // watermark; a probe never waits on an open transaction.
                             {"isolation.level", "read_uncommitted"},
                             // After a probe's message the fetcher asks again at the
                             // end of the log, and the broker (mock or real) holds
                             // that fetch this long, delaying the next probe's
                             // fetch: with 10 ms a search took ~10x as long.
                             {"fetch.wait.max.ms", "1"},
                         });
    if (!conf.ok()) return conf.status();
    char errstr[512];
    reader = rd_kafka_new(RD_KAFKA_CONSUMER, *conf, errstr, sizeof errstr);
    if (!reader) {
      rd_kafka_conf_destroy(*conf);
      return Status::Internal(std::string("rd_kafka_new: ") + errstr);
    }
    rd_kafka_poll_set_consumer(reader);  // its error and log events come with consumer_poll
    return reader;
  }

  // Watermarks of every partition of topic (the first failure, if any).
  Result<std::map<int32_t, Watermarks>> AllWatermarks(const std::string& topic, int timeout_ms) {
    rd_kafka_topic_t* t = rd_kafka_topic_new(rk, topic.c_str(), nullptr);
    const rd_kafka_metadata_t* md = nullptr;
    rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 0, t, &md, timeout_ms);
    rd_kafka_topic_destroy(t);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR) return Status::Unavailable("metadata of " + topic + ": " + rd_kafka_err2str(e));
    std::map<int32_t, Watermarks> out;
    Status failed;
    if (md->topic_cnt == 1 && md->topics[0].err == RD_KAFKA_RESP_ERR_NO_ERROR) {
      for (int i = 0; i < md->topics[0].partition_cnt; ++i) {
        const int32_t p = md->topics[0].partitions[i].id;
        auto w = QueryWatermarks(rk, topic, p, timeout_ms);
        if (!w.ok()) {
          failed = w.status();
          break;
        }
        out[p] = *w;
      }
    } else {
      failed = Status::NotFound("topic " + topic + " not in metadata");
    }
    rd_kafka_metadata_destroy(md);
    if (!failed.ok()) return failed;
    return out;
  }
};

OffsetQuery::OffsetQuery(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
OffsetQuery::~OffsetQuery() = default;

Result<std::unique_ptr<OffsetQuery>> OffsetQuery::Create(const std::string& bootstrap, const Properties& properties) {
  auto conf = MakeConf(bootstrap, "cityloop-offset-query", properties);
  if (!conf.ok()) return conf.status();
  char errstr[512];
  auto impl = std::make_unique<Impl>();
  impl->bootstrap = bootstrap;
  impl->properties = properties;
  impl->rk = rd_kafka_new(RD_KAFKA_PRODUCER, *conf, errstr, sizeof errstr);
  if (!impl->rk) {
    rd_kafka_conf_destroy(*conf);
    return Status::Internal(std::string("rd_kafka_new: ") + errstr);
  }
  return std::unique_ptr<OffsetQuery>(new OffsetQuery(std::move(impl)));
}

Result<int64_t> OffsetQuery::HighWatermark(const std::string& topic, int32_t partition, int timeout_ms) {
  auto w = QueryWatermarks(impl_->rk, topic, partition, timeout_ms);
  if (!w.ok()) return w.status();
  return w->high;
}

Result<std::map<int32_t, int64_t>> OffsetQuery::HighWatermarks(const std::string& topic, int timeout_ms) {
  auto all = impl_->AllWatermarks(topic, timeout_ms);
  if (!all.ok()) return all.status();
  std::map<int32_t, int64_t> out;
  for (const auto& [p, w] : *all) out[p] = w.high;
  return out;
}

Result<std::map<int32_t, int64_t>> OffsetQuery::LowWatermarks(const std::string& topic, int timeout_ms) {
  auto all = impl_->AllWatermarks(topic, timeout_ms);
  if (!all.ok()) return all.status();
  std::map<int32_t, int64_t> out;
  for (const auto& [p, w] : *all) out[p] = w.low;
  return out;
}

Result<OffsetQuery::TimeOffsets> OffsetQuery::OffsetsForTime(const std::string& topic, int64_t ts_ms,
                                                             int timeout_ms) {
  auto all = impl_->AllWatermarks(topic, timeout_ms);
  if (!all.ok()) return all.status();
  TimeOffsets out;
  // Before every message. Also keeps negative times, which ListOffsets
  // would read as "earliest"/"latest", away from the broker.
  if (ts_ms < 0) {
    for (const auto& [p, w] : *all) out.offsets[p] = w.low;
    return out;
  }

  // Ask the broker about the partitions that hold messages; an empty one's
  // answer is its high watermark.
  rd_kafka_topic_partition_list_t* ask = rd_kafka_topic_partition_list_new(static_cast<int>(all->size()));
  for (const auto& [p, w] : *all) {
    if (w.low < w.high) {
      rd_kafka_topic_partition_list_add(ask, topic.c_str(), p)->offset = ts_ms;
    } else {
      out.offsets[p] = w.high;
    }
  }
  std::vector<int32_t> unanswered;
  if (ask->cnt > 0) {
    const rd_kafka_resp_err_t e = rd_kafka_offsets_for_times(impl_->rk, ask, timeout_ms);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR) spdlog::debug("offsets of {} for time {}: {}", topic, ts_ms, rd_kafka_err2str(e));
    for (int i = 0; i < ask->cnt; ++i) {
      const rd_kafka_topic_partition_t& tp = ask->elems[i];
      if (e == RD_KAFKA_RESP_ERR_NO_ERROR && tp.err == RD_KAFKA_RESP_ERR_NO_ERROR && tp.offset >= 0) {
        out.offsets[tp.partition] = tp.offset;
      } else {
        unanswered.push_back(tp.partition);
      }
    }
  }
  rd_kafka_topic_partition_list_destroy(ask);
  if (unanswered.empty()) return out;

  // -1 is also a real broker's answer when every message is older; the
  // search then ends at the high watermark.
  auto reader = impl_->Reader();
  if (!reader.ok()) return reader.status();
  Status failed;
  for (int32_t p : unanswered) {
    auto offset = SearchByTime(*reader, topic, p, (*all)[p], ts_ms, timeout_ms);
    if (!offset.ok()) {
      failed = offset.status();
      break;
    }
    out.offsets[p] = *offset;
  }
  rd_kafka_assign(*reader, nullptr);  // stop fetching until the next search
  if (!failed.ok()) return failed;
  out.scanned = true;
  return out;
}

Status OffsetQuery::ReadRange(const std::string& topic, int32_t partition, int64_t from, int64_t to,
                              const std::function<Status(const Message&)>& fn, int timeout_ms) {
  if (from >= to) return Status::Ok();
  auto reader = impl_->Reader();
  if (!reader.ok()) return reader.status();
  rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(list, topic.c_str(), partition)->offset = from;
  rd_kafka_resp_err_t e = rd_kafka_assign(*reader, list);
  rd_kafka_topic_partition_list_destroy(list);
  if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return Status::Unavailable("reading " + Where(topic, partition) + ": " + rd_kafka_err2str(e));
  }
  Status result;
  int64_t next = from;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (next < to && result.ok()) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      result = Status::Unavailable(Where(topic, partition) + ": no message at offset " + std::to_string(next) +
                                   " within " + std::to_string(timeout_ms) + " ms");
      break;
    }
    rd_kafka_message_t* m = rd_kafka_consumer_poll(*reader, static_cast<int>(std::min<int64_t>(left.count(), 200)));
    if (!m) continue;
    // Only this partition is assigned, from `from`: anything outside [next,
    // to) is left over from an earlier read or probe.
    const bool ours = m->rkt && topic == rd_kafka_topic_name(m->rkt) && m->partition == partition &&
                      m->offset >= next && m->offset < to;
    if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
      if (ours && m->offset == next) next = to;  // the partition ends here, before `to`
    } else if (m->err) {
      char buf[8];
      if (rd_kafka_fatal_error(*reader, buf, sizeof buf) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        result = Status::Internal("reading " + Where(topic, partition) + ": " + rd_kafka_err2name(m->err) + ": " +
                                  rd_kafka_message_errstr(m));
      }
      // Otherwise transient: librdkafka retries the fetch by itself.
    } else if (ours) {
      next = m->offset + 1;
      deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
      result = fn(kafka_internal::ToMessage(m));
    }
    rd_kafka_message_destroy(m);
  }
  rd_kafka_assign(*reader, nullptr);  // stop fetching until the next read
  return result;
}

}  // namespace cityloop::ingest
