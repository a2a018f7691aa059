// EmbeddedBroker on librdkafka's mock cluster (rdkafka_mock.h).
//
// Facts about the mock cluster in librdkafka 2.0.2 (Debian 12), checked
// against its source (src/rdkafka_mock.c, rdkafka_mock_cgrp.c) and by
// tests/ingest/broker_test.cc:
//
// * Retention. Every partition keeps at most 5 MiB of record-batch bytes
//   (mpart->max_size = 5 * 1024 * 1024) and at most 100000 record batches
//   (mpart->max_cnt; batches, not messages). Appending beyond either limit
//   drops the oldest batches, always keeping the newest one: the log start
//   offset moves forward, so a consumer positioned before it gets
//   OFFSET_OUT_OF_RANGE and falls back to auto.offset.reset. Nothing is ever
//   written to disk; the data dies with the process. The limits are fixed
//   (no API or property changes them).
// * Auto-creation. The mock answers Metadata only up to v2, which has no
//   AllowAutoTopicCreation flag, so ANY Metadata request naming an unknown
//   topic (a producer, a consumer subscribing, kcat -P or -C, whatever the
//   client's allow.auto.create.topics says) creates it with
//   mcluster->defaults.partition_cnt partitions, which is hard-coded to 4
//   with replication min(3, brokers); 2.0.2 has no setter and no
//   CreateTopics handler. So BrokerOptions::default_partitions is honoured
//   only when it is 4; any other value is reported with a warning at Start and
//   callers that need another count must list the topic in options.topics.
// * Consumer groups. FindCoordinator, JoinGroup, SyncGroup, Heartbeat,
//   LeaveGroup, OffsetCommit and OffsetFetch are implemented (classic eager
//   protocol; the leader's first assignor wins). The first join of an empty
//   group waits 3 s (like group.initial.rebalance.delay.ms); a later rebalance
//   waits up to session.timeout.ms - 1 s for members to rejoin. A member with
//   session.timeout.ms below 3 s therefore expires while waiting for its
//   first join and never gets an assignment. Committed offsets live in
//   memory only.
//
// CITYLOOP_MOCK_DEBUG=<librdkafka debug contexts> (e.g. "mock") logs the
// mock's protocol traffic at debug level.
#include "ingest/broker.h"

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <spdlog/spdlog.h>

#include <cstdlib>
#include <optional>
#include <set>

#include "ingest/kafka_internal.h"

namespace cityloop::ingest {
namespace {
// What the mock cluster gives topics it auto-creates (see above).
constexpr int kMockAutoCreatePartitions = 4;
}  // namespace

BrokerOptions BrokerOptionsFor(const KafkaOptions& kafka, int shards) {
  BrokerOptions o;
  const int n = kafka.partitions > 0 ? kafka.partitions : 1;
  const TopicNames& t = kafka.topics;
  std::set<std::string> seen;
  for (const std::string* name : {&t.sensors, &t.camera_frames, &t.camera_detections, &t.reports, &t.units,
                                  &t.commands, &t.cases, &t.dispatch, &t.dlq}) {
    if (name->empty() || !seen.insert(*name).second) continue;
    o.topics.emplace_back(*name, n);
  }
  for (const std::string* name : {&t.work, &t.changelog}) {
    if (shards > 0 && seen.insert(*name).second) o.topics.emplace_back(*name, shards);
  }
  o.default_partitions = kMockAutoCreatePartitions;
  return o;
}

struct EmbeddedBroker::Impl {
  rd_kafka_t* rk = nullptr;
  rd_kafka_mock_cluster_t* cluster = nullptr;

  ~Impl() {
    if (cluster) rd_kafka_mock_cluster_destroy(cluster);
    if (rk) rd_kafka_destroy(rk);
  }
};

EmbeddedBroker::EmbeddedBroker(std::unique_ptr<Impl> impl, std::string bootstrap)
    : impl_(std::move(impl)), bootstrap_(std::move(bootstrap)) {}

EmbeddedBroker::~EmbeddedBroker() = default;

Result<std::unique_ptr<EmbeddedBroker>> EmbeddedBroker::Start(const BrokerOptions& options) {
  if (options.brokers < 1) return Status::InvalidArgument("embedded broker: brokers must be >= 1");
  for (const auto& [name, partitions] : options.topics) {
    if (name.empty() || partitions < 1) {
      return Status::InvalidArgument("embedded broker: topic '" + name + "' needs a name and >= 1 partitions");
    }
  }
  if (options.default_partitions != kMockAutoCreatePartitions) {
    spdlog::warn(
        "embedded broker: librdkafka's mock cluster auto-creates topics with {} partitions, not the requested {}; "
        "list topics that need another count in BrokerOptions::topics",
        kMockAutoCreatePartitions, options.default_partitions);
  }

  // A producer handle that never produces: it only owns the mock cluster
  // (its threads, sockets and logging).
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  std::string err;
  if (!kafka_internal::SetConf(conf, "client.id", "cityloop-embedded-broker", &err) ||
      !kafka_internal::SetConf(conf, "log.connection.close", "false", &err)) {
    rd_kafka_conf_destroy(conf);
    return Status::Internal("embedded broker: " + err);
  }
  if (const char* dbg = std::getenv("CITYLOOP_MOCK_DEBUG"); dbg && *dbg) {
    if (!kafka_internal::SetConf(conf, "debug", dbg, &err)) spdlog::warn("embedded broker: {}", err);
  }
  kafka_internal::InstallLogger(conf);
  char errstr[512];
  auto impl = std::make_unique<Impl>();
  impl->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
  if (!impl->rk) {
    rd_kafka_conf_destroy(conf);
    return Status::Internal(std::string("embedded broker: rd_kafka_new: ") + errstr);
  }
  impl->cluster = rd_kafka_mock_cluster_new(impl->rk, options.brokers);
  if (!impl->cluster) return Status::Unavailable("embedded broker: could not start the mock cluster");

  const int replication = 1;
  for (const auto& [name, partitions] : options.topics) {
    rd_kafka_resp_err_t e = rd_kafka_mock_topic_create(impl->cluster, name.c_str(), partitions, replication);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR && e != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
      return Status::Internal("embedded broker: creating topic " + name + ": " + rd_kafka_err2str(e));
    }
  }
  const char* bootstraps = rd_kafka_mock_cluster_bootstraps(impl->cluster);
  if (!bootstraps || !*bootstraps) return Status::Internal("embedded broker: no bootstrap address");
  std::string bootstrap = bootstraps;
  spdlog::info("embedded broker: {} broker(s) at {}, {} topic(s) created", options.brokers, bootstrap,
               options.topics.size());
  return std::unique_ptr<EmbeddedBroker>(new EmbeddedBroker(std::move(impl), std::move(bootstrap)));
}

Status EmbeddedBroker::SetBrokerDown(int32_t broker_id, bool down) {
  rd_kafka_resp_err_t e = down ? rd_kafka_mock_broker_set_down(impl_->cluster, broker_id)
                               : rd_kafka_mock_broker_set_up(impl_->cluster, broker_id);
  if (e) return Status::InvalidArgument("broker " + std::to_string(broker_id) + ": " + rd_kafka_err2str(e));
  spdlog::warn("embedded broker: broker {} set {}", broker_id, down ? "down" : "up");
  return Status::Ok();
}

Status EmbeddedBroker::PushRequestErrors(int16_t api_key, const std::vector<int>& errors) {
  if (errors.empty()) return Status::Ok();
  std::vector<rd_kafka_resp_err_t> codes;
  for (int e : errors) codes.push_back(static_cast<rd_kafka_resp_err_t>(e));
  rd_kafka_mock_push_request_errors_array(impl_->cluster, api_key, codes.size(), codes.data());
  spdlog::warn("embedded broker: the next {} request(s) of API {} fail", codes.size(), api_key);
  return Status::Ok();
}

namespace {
std::optional<int> ParseNumber(const std::string& text) {
  if (text.empty()) return std::nullopt;
  char* end = nullptr;
  const long v = std::strtol(text.c_str(), &end, 10);
  if (!end || *end != '\0') return std::nullopt;
  return static_cast<int>(v);
}
}  // namespace

Result<int> KafkaErrorCode(const std::string& name) {
  if (auto n = ParseNumber(name)) return *n;
  const rd_kafka_err_desc* descs = nullptr;
  size_t n = 0;
  rd_kafka_get_err_descs(&descs, &n);
  for (size_t i = 0; i < n; ++i) {
    // Broker errors only (codes >= 0); librdkafka's own (negative) never travel on the wire.
    if (descs[i].name && descs[i].code >= 0 && name == descs[i].name) return static_cast<int>(descs[i].code);
  }
  return Status::InvalidArgument("unknown Kafka error '" + name + "'");
}

Result<int16_t> KafkaApiKey(const std::string& name) {
  if (auto n = ParseNumber(name); n && *n >= 0 && *n < 100) return static_cast<int16_t>(*n);
  static const std::pair<const char*, int16_t> kKeys[] = {
      {"Produce", 0},       {"Fetch", 1},         {"ListOffsets", 2},     {"Metadata", 3},
      {"OffsetCommit", 8},  {"OffsetFetch", 9},   {"FindCoordinator", 10}, {"JoinGroup", 11},
      {"Heartbeat", 12},    {"LeaveGroup", 13},   {"SyncGroup", 14},       {"ApiVersions", 18},
      {"InitProducerId", 22}};
  for (const auto& [n, key] : kKeys) {
    if (name == n) return key;
  }
  return Status::InvalidArgument("unknown Kafka API '" + name + "'");
}

}  // namespace cityloop::ingest
