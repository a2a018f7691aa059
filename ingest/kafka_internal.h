// Private helpers shared by the librdkafka users in ingest/ (kafka.cc,
// broker.cc). Not part of the module interface.
#pragma once

#include <librdkafka/rdkafka.h>

#include <string>

namespace cityloop::ingest::kafka_internal {

// rd_kafka_conf_set; on failure fills *err with "name=value: reason".
bool SetConf(rd_kafka_conf_t* conf, const std::string& name, const std::string& value, std::string* err);

// Routes librdkafka's log lines to spdlog (syslog levels 0-3 -> error,
// 4 -> warn, 5-6 -> info, 7 -> debug) and its error events to spdlog warnings.
void InstallLogger(rd_kafka_conf_t* conf);

}  // namespace cityloop::ingest::kafka_internal
