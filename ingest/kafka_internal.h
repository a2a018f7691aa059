// Private helpers shared by the librdkafka users in ingest/ (kafka.cc,
// broker.cc). Not part of the module interface.
#pragma once

#include <librdkafka/rdkafka.h>

#include <string>

#include "ingest/kafka.h"

namespace cityloop::ingest::kafka_internal {

// A fetched librdkafka message as a Message (topic, partition, offset, key,
// value, CreateTime or LogAppendTime timestamp, headers).
Message ToMessage(const rd_kafka_message_t* m);

// rd_kafka_conf_set; on failure fills *err with "name=value: reason".
bool SetConf(rd_kafka_conf_t* conf, const std::string& name, const std::string& value, std::string* err);

// Routes librdkafka's log lines to spdlog (syslog levels 0-3 -> error,
// 4 -> warn, 5-6 -> info, 7 -> debug) and its error events to spdlog warnings.
void InstallLogger(rd_kafka_conf_t* conf);

// KafkaBrokersReachable() (kafka.h) follows the handles tracked here: a
// tracked handle is "down" from librdkafka's ALL_BROKERS_DOWN error event
// until its statistics show a broker UP again (TrackConnectivity installs the
// statistics callback on a conf) or MarkReachable is called (data arrived).
// Track a handle only while something polls it (the callbacks run in poll).
void TrackConnectivity(rd_kafka_conf_t* conf);
void TrackHandle(const rd_kafka_t* rk);
void UntrackHandle(const rd_kafka_t* rk);
void MarkReachable(const rd_kafka_t* rk);

}  // namespace cityloop::ingest::kafka_internal
