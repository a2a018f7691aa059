// Recording from Kafka: copies a range of input topics into a replay log
// (cityloop record; replay --from-offsets / --from-time spools its range this
// way, then replays the log). Resumable: a log that already holds a partition
// continues after its newest record.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/status.h"
#include "replay/replay_log.h"
#include "storage/store.h"

namespace cityloop::replay {

struct KafkaRange {
  std::string bootstrap;
  std::vector<std::string> topics;
  std::map<std::string, std::string> properties;  // extra librdkafka properties
  // Start of each partition: an explicit offset, else the first message at or
  // after from_ms (asked of the broker, or found by a scan), else the earliest.
  std::map<storage::TopicPartition, int64_t> from_offsets;
  std::optional<int64_t> from_ms;
  // End (exclusive): the first message at or after to_ms; else, with
  // until_caught_up, the partitions' ends when recording starts; else follow
  // the topics until stopped.
  std::optional<int64_t> to_ms;
  bool until_caught_up = false;
};

struct RecordedRange {
  int64_t from = 0, to = 0;  // offsets [from, to) recorded this time
};

struct RecordStats {
  uint64_t records = 0;
  std::map<storage::TopicPartition, RecordedRange> partitions;
  bool scanned_for_time = false;  // the broker could not look offsets up by time
};

Result<RecordStats> RecordFromKafka(const KafkaRange& range, LogWriter* writer, const std::atomic<bool>* stop);

// "city.sensors:0=120,city.sensors:1=97" -> offsets.
Result<std::map<storage::TopicPartition, int64_t>> ParseOffsetSpec(const std::string& spec);

}  // namespace cityloop::replay
