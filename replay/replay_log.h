// Replay log: the input records the engine (run --record) or the recorder
// (cityloop record) read, kept to run again through the same pipeline.
//
// On disk a log is a directory:
//   manifest.json                       {"format":"cityloop-replay-log","version":1,"writer":...}
//   <topic>/<partition>/<NNNNNNNN>.seg  one stream per Kafka partition, in offset order,
//                                       rotated by size into numbered segments
//   <topic>/<partition>/<NNNNNNNN>.idx  a closed segment's index (JSON): counts, seq, offset
//                                       and timestamp ranges, and a position every ~1 MiB
//   @clock/0/...                        the engine's idle clock advances (run --record only;
//                                       '@' cannot occur in a Kafka topic name)
// A segment starts with "CLOGSEG1" and a framed JSON header (topic, partition,
// segment number); then one frame per record:
//   u32 magic "CLRC" | u32 payload length | u32 CRC-32C of the payload | payload
//   payload: u8 kind | u64 seq | i64 offset | i64 timestamp | i64 ingest_ms |
//            u32 key length, key | u16 header count, (u32, name, u32, value)* | value
// little-endian. `seq` is the writer's order over all streams: for an engine
// recording, the order the pipeline applied the records in.
//
// Streams per partition, not one interleaved file: a partition is Kafka's unit
// of order, so the reader can merge partitions by time exactly however the
// writer happened to interleave them (a backlog read one partition ahead of
// another, a different partition count), and a quiet partition never holds
// the merge back.
#pragma once

#include <cstdint>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/status.h"
#include "ingest/kafka.h"
#include "storage/store.h"

namespace cityloop::replay {

inline constexpr const char* kClockStream = "@clock";

enum class RecordKind : uint8_t {
  kMessage = 1,  // an input record
  kClock = 2,    // the engine's event time moved on from the wall clock (Pipeline::Tick at ingest_ms)
};

struct LogRecord {
  RecordKind kind = RecordKind::kMessage;
  uint64_t seq = 0;
  ingest::Message message;  // kClock: empty
  int64_t ingest_ms = -1;   // when the engine read it; -1 when recorded straight from Kafka
};

// A damaged stretch of a log, skipped: reading goes on at the next valid record.
struct LogProblem {
  std::string file;
  int64_t position = 0;  // byte offset in file; -1 for the file as a whole
  std::string what;
  std::string ToString() const;
};

struct LogWriterOptions {
  uint64_t segment_bytes = 64ull << 20;
  std::string writer = "record";  // "record" (from Kafka) or "engine" (run --record)
};

class LogWriter {
 public:
  // Opens dir for appending, creating it if needed. An existing log of the
  // same writer is continued: each stream's torn tail is cut off (reported in
  // repairs()) and appending goes on in a new segment.
  static Result<std::unique_ptr<LogWriter>> Open(const std::string& dir, const LogWriterOptions& options = {});
  ~LogWriter();
  LogWriter(const LogWriter&) = delete;
  LogWriter& operator=(const LogWriter&) = delete;

  Status Append(const ingest::Message& m, int64_t ingest_ms = -1);
  Status AppendClock(int64_t now_ms);
  // Hands what is buffered to the OS: it survives a crash of this process.
  Status Flush();
  // Closes every segment and writes its index. Further appends fail.
  Status Close();

  // The offset after the newest recorded message of topic/partition.
  std::optional<int64_t> NextOffset(const std::string& topic, int32_t partition) const;
  uint64_t records() const { return next_seq_ - 1; }
  const std::vector<LogProblem>& repairs() const { return repairs_; }

 private:
  struct Stream;
  LogWriter() = default;
  Result<Stream*> StreamFor(const std::string& topic, int32_t partition);
  Status Write(Stream& s, const LogRecord& r, const ingest::Message& m);

  std::string dir_;
  LogWriterOptions options_;
  std::map<storage::TopicPartition, std::unique_ptr<Stream>> streams_;
  uint64_t next_seq_ = 1;
  std::string scratch_;
  std::vector<LogProblem> repairs_;
  bool closed_ = false;
};

enum class LogOrder {
  // By seq: exactly the order the writer saw (an engine recording: the order
  // the live pipeline applied them in, its clock advances included).
  kLog,
  // By record timestamp, then topic, key and offset (keyless records: by
  // value): the same order however the records were spread over partitions
  // or interleaved when read. Clock records are left out.
  kTime,
};

struct LogReadOptions {
  LogOrder order = LogOrder::kLog;
  // kTime: timestamps within one partition may run back this far and still
  // come out in order. Beyond it a record comes out late (counted).
  int64_t reorder_window_ms = 1000;
  std::vector<std::string> topics;  // empty: every topic
  // Records with from_ms <= timestamp < to_ms (index-known segments outside are skipped).
  int64_t from_ms = std::numeric_limits<int64_t>::min();
  int64_t to_ms = std::numeric_limits<int64_t>::max();
};

struct LogInfo {
  std::string writer;
  uint64_t records = 0;         // from the indexes; estimated by size for unindexed segments
  bool has_clock = false;       // an engine recording with clock advances
  std::vector<storage::TopicPartition> streams;
  uint64_t bytes = 0;
};

class LogReader {
 public:
  static Result<std::unique_ptr<LogReader>> Open(const std::string& dir, const LogReadOptions& options = {});
  ~LogReader();
  LogReader(const LogReader&) = delete;
  LogReader& operator=(const LogReader&) = delete;

  // The next record in the chosen order, or nullptr at the end. Valid until
  // the next call.
  LogRecord* Next();
  const LogInfo& info() const { return info_; }
  // Damage found so far, in the order it was met.
  const std::vector<LogProblem>& problems() const;
  // kTime: records that came out after a later-timestamped one (disorder
  // within a partition beyond the reorder window).
  uint64_t out_of_order() const { return out_of_order_; }
  uint64_t bytes_read() const;

 private:
  class StreamReader;
  LogReader() = default;
  bool Before(size_t a, size_t b) const;  // stream a's head comes out before stream b's

  LogReadOptions options_;
  LogInfo info_;
  std::vector<std::unique_ptr<StreamReader>> streams_;
  std::vector<size_t> heap_;  // streams with a head, ordered by Before
  LogRecord current_;
  int64_t last_ts_ = std::numeric_limits<int64_t>::min();
  uint64_t out_of_order_ = 0;
  bool started_ = false;
  mutable std::vector<LogProblem> problems_;
};

// Who wrote the log at dir ("record" or "engine"), from its manifest.
Result<std::string> LogWriterOf(const std::string& dir);

// Time order of two records (LogOrder::kTime).
bool TimeOrderBefore(const LogRecord& a, const LogRecord& b);

}  // namespace cityloop::replay
