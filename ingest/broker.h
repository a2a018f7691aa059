// EmbeddedBroker: librdkafka's mock cluster, a Kafka-protocol broker inside
// this process, for `cityloop broker`, `cityloop run --embedded-kafka` and
// tests. Real clients (librdkafka, kcat) connect to bootstrap() over TCP.
// It keeps a few MB per partition in memory and drops the oldest data beyond
// that: size tests and partition counts accordingly. Thread-safe to read.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/config.h"
#include "core/status.h"

namespace cityloop::ingest {

struct BrokerOptions {
  int brokers = 1;
  // Topics to create up front, with their partition counts. Topics that
  // clients ask for later are auto-created by the mock with 4 partitions
  // (fixed in librdkafka 2.0.2; any other default_partitions is only warned about).
  std::vector<std::pair<std::string, int>> topics;
  int default_partitions = 4;
};

// Every topic of the config: inputs with `kafka.partitions` partitions, outputs
// too; with shards > 0 (scale.shards) also the work and changelog topics with
// one partition per shard.
BrokerOptions BrokerOptionsFor(const KafkaOptions& kafka, int shards = 0);

class EmbeddedBroker {
 public:
  static Result<std::unique_ptr<EmbeddedBroker>> Start(const BrokerOptions& options);
  ~EmbeddedBroker();
  const std::string& bootstrap() const { return bootstrap_; }

  // Fault injection (the fault tests; `cityloop broker --control`).
  // Takes broker `broker_id` (1..brokers) down: its connections are closed
  // and new ones refused, until it is set up again.
  Status SetBrokerDown(int32_t broker_id, bool down);
  // The next errors.size() requests with this API key (0 = Produce, see
  // KafkaApiKey) are answered with these Kafka error codes, in order
  // (rd_kafka_mock_push_request_errors; 0 lets one request through).
  Status PushRequestErrors(int16_t api_key, const std::vector<int>& errors);

 private:
  struct Impl;
  EmbeddedBroker(std::unique_ptr<Impl> impl, std::string bootstrap);
  std::unique_ptr<Impl> impl_;
  std::string bootstrap_;
};

// A Kafka protocol error code from its name as librdkafka spells it without
// the RD_KAFKA_RESP_ERR_ prefix ("NOT_LEADER_FOR_PARTITION",
// "REQUEST_TIMED_OUT", "INVALID_RECORD"), or from its number.
Result<int> KafkaErrorCode(const std::string& name);
// An API key from its name ("Produce", "Fetch", "Metadata", ...) or number.
Result<int16_t> KafkaApiKey(const std::string& name);

}  // namespace cityloop::ingest
