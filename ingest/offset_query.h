// OffsetQuery: asks the cluster where partitions begin and end (watermarks),
// for "has the engine caught up with its input?" (run --exit-when-caught-up,
// tests, lag metrics), which offsets a time corresponds to (replay from /
// to a timestamp), and reads a range of one partition (a shard's changelog).
// Holds one librdkafka handle, plus a consumer handle made on the first
// OffsetsForTime or ReadRange that has to read messages; one thread at a time.
// Watermark queries fail at once (kUnavailable) while KafkaBrokersReachable()
// says this process's consumers have lost the cluster (kafka.h).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "core/status.h"
#include "ingest/kafka.h"

namespace cityloop::ingest {

class OffsetQuery {
 public:
  static Result<std::unique_ptr<OffsetQuery>> Create(const std::string& bootstrap,
                                                     const std::map<std::string, std::string>& properties = {});
  ~OffsetQuery();
  // The offset the next produced message of topic/partition will get.
  Result<int64_t> HighWatermark(const std::string& topic, int32_t partition, int timeout_ms = 5000);
  // High watermark of every partition of topic.
  Result<std::map<int32_t, int64_t>> HighWatermarks(const std::string& topic, int timeout_ms = 5000);
  // Low watermark (the first offset still held) of every partition of topic.
  Result<std::map<int32_t, int64_t>> LowWatermarks(const std::string& topic, int timeout_ms = 5000);

  struct TimeOffsets {
    std::map<int32_t, int64_t> offsets;  // partition -> offset
    bool scanned = false;                // some partition was found by reading messages, not by the broker
  };
  // For each partition of topic: the first offset still held whose message
  // timestamp is >= ts_ms, or the high watermark when every message is older
  // (Kafka's offsetsForTimes; a replay's start, or its exclusive end).
  // ts_ms < 0 gives the low watermarks. Asks the broker first (ListOffsets by
  // time). Where it gives no offset (an error, or -1 for a non-empty
  // partition: librdkafka's mock cluster always answers -1, a real broker
  // does when every message is older), binary-searches the partition's
  // offsets, reading one message per probe. That assumes timestamps never
  // decrease within a partition (LogAppendTime, or one producer stamping in
  // order); the search then lands on the first such offset even inside a run
  // of equal timestamps. timeout_ms bounds each request and each probe, not
  // the whole call: a search makes about log2(messages) + 1 probes.
  // Unavailable when a probe gets no message in time; FailedPrecondition when
  // messages carry no timestamp.
  Result<TimeOffsets> OffsetsForTime(const std::string& topic, int64_t ts_ms, int timeout_ms = 5000);

  // Hands fn every message of topic/partition with an offset in [from, to),
  // in order, through the same consumer handle as OffsetsForTime (no group,
  // so no join: a shard's changelog is read this way when it moves).
  // Offsets that hold no message are skipped; the partition ending at the
  // next offset wanted ends the read early. Unavailable when no message comes
  // for timeout_ms; an error from fn ends the read with it.
  Status ReadRange(const std::string& topic, int32_t partition, int64_t from, int64_t to,
                   const std::function<Status(const Message&)>& fn, int timeout_ms = 30000);

 private:
  struct Impl;
  explicit OffsetQuery(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace cityloop::ingest
