// Helpers for tests that drive the whole engine: read a topic to its end with
// a real Kafka consumer, and parse CloudEvents records.
#pragma once

#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "ingest/kafka.h"

namespace cityloop::testing {

// Every message currently in topic (all partitions, from the beginning),
// read with a fresh consumer group. Waits until the high watermarks are reached.
std::vector<ingest::Message> ReadTopic(const std::string& bootstrap, const std::string& topic);

// The JSON values of messages whose value parses; dies on unparsable ones.
std::vector<nlohmann::json> ParseValues(const std::vector<ingest::Message>& messages);

// CloudEvents of the given type.
std::vector<nlohmann::json> OfType(const std::vector<nlohmann::json>& events, const std::string& type);

}  // namespace cityloop::testing
