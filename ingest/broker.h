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

// Every topic of the config: inputs with `kafka.partitions` partitions, outputs too.
BrokerOptions BrokerOptionsFor(const KafkaOptions& kafka);

class EmbeddedBroker {
 public:
  static Result<std::unique_ptr<EmbeddedBroker>> Start(const BrokerOptions& options);
  ~EmbeddedBroker();
  const std::string& bootstrap() const { return bootstrap_; }

 private:
  struct Impl;
  EmbeddedBroker(std::unique_ptr<Impl> impl, std::string bootstrap);
  std::unique_ptr<Impl> impl_;
  std::string bootstrap_;
};

}  // namespace cityloop::ingest
