#include "ingest/offset_query.h"

#include <librdkafka/rdkafka.h>

#include "ingest/kafka_internal.h"

namespace cityloop::ingest {

struct OffsetQuery::Impl {
  rd_kafka_t* rk = nullptr;
  ~Impl() {
    if (rk) rd_kafka_destroy(rk);
  }
};

OffsetQuery::OffsetQuery(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
OffsetQuery::~OffsetQuery() = default;

Result<std::unique_ptr<OffsetQuery>> OffsetQuery::Create(const std::string& bootstrap,
                                                         const std::map<std::string, std::string>& properties) {
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  kafka_internal::InstallLogger(conf);
  std::string err;
  bool ok = kafka_internal::SetConf(conf, "bootstrap.servers", bootstrap, &err) &&
            kafka_internal::SetConf(conf, "client.id", "cityloop-offset-query", &err) &&
            kafka_internal::SetConf(conf, "log.connection.close", "false", &err);
  for (const auto& [k, v] : properties) ok = ok && kafka_internal::SetConf(conf, k, v, &err);
  if (!ok) {
    rd_kafka_conf_destroy(conf);
    return Status::InvalidArgument(err);
  }
  char errstr[512];
  auto impl = std::make_unique<Impl>();
  impl->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
  if (!impl->rk) {
    rd_kafka_conf_destroy(conf);
    return Status::Internal(std::string("rd_kafka_new: ") + errstr);
  }
  return std::unique_ptr<OffsetQuery>(new OffsetQuery(std::move(impl)));
}

Result<int64_t> OffsetQuery::HighWatermark(const std::string& topic, int32_t partition, int timeout_ms) {
  int64_t low = 0, high = 0;
  rd_kafka_resp_err_t e = rd_kafka_query_watermark_offsets(impl_->rk, topic.c_str(), partition, &low, &high, timeout_ms);
  if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return Status::Unavailable("watermarks of " + topic + "/" + std::to_string(partition) + ": " + rd_kafka_err2str(e));
  }
  return high;
}

Result<std::map<int32_t, int64_t>> OffsetQuery::HighWatermarks(const std::string& topic, int timeout_ms) {
  rd_kafka_topic_t* t = rd_kafka_topic_new(impl_->rk, topic.c_str(), nullptr);
  const rd_kafka_metadata_t* md = nullptr;
  rd_kafka_resp_err_t e = rd_kafka_metadata(impl_->rk, 0, t, &md, timeout_ms);
  rd_kafka_topic_destroy(t);
  if (e != RD_KAFKA_RESP_ERR_NO_ERROR) return Status::Unavailable("metadata of " + topic + ": " + rd_kafka_err2str(e));
  std::map<int32_t, int64_t> out;
  Status failed;
  if (md->topic_cnt == 1 && md->topics[0].err == RD_KAFKA_RESP_ERR_NO_ERROR) {
    for (int i = 0; i < md->topics[0].partition_cnt; ++i) {
      const int32_t p = md->topics[0].partitions[i].id;
      auto high = HighWatermark(topic, p, timeout_ms);
      if (!high.ok()) {
        failed = high.status();
        break;
      }
      out[p] = *high;
    }
  } else {
    failed = Status::NotFound("topic " + topic + " not in metadata");
  }
  rd_kafka_metadata_destroy(md);
  if (!failed.ok()) return failed;
  return out;
}

}  // namespace cityloop::ingest
