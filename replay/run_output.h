// What a replay run leaves behind, in a form two runs can be compared by:
//   cases.jsonl  every case (id order) with its signals and timeline
//   kpi.json     the department, district, category and total KPIs of the run
//   digest       SHA-256 over every output event, in publishing order
// Provenance is left out of all three: where an input sat in Kafka
// (partition, offset) says nothing about what the city saw, and differs
// between the same data in a topic of 1 or 12 partitions. So the same input
// gives byte-identical output however it was partitioned, batched or paced.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "core/config.h"
#include "core/status.h"
#include "replay/text_file.h"  // WriteTextFile, for the run outputs
#include "storage/store.h"

namespace cityloop::replay {

// Removes the Kafka coordinates of inputs ("input", "input_partition",
// "input_offset") from j, at any depth.
void StripProvenance(nlohmann::json& j);

// An output event as the digest sees it: {"topic","key","headers":[[n,v]..],
// "value"} with provenance stripped; value is the event JSON itself when it
// parses, else the text.
nlohmann::json OutputEventJson(const storage::OutboxRecord& r);

// SHA-256 over output events: topic, key, headers and value of each, with
// provenance stripped from JSON values and dead-letter headers.
class OutputDigest {
 public:
  OutputDigest();
  ~OutputDigest();
  OutputDigest(const OutputDigest&) = delete;
  OutputDigest& operator=(const OutputDigest&) = delete;
  void Add(const storage::OutboxRecord& r);
  // "sha256:<64 hex digits>"; the digest of everything added so far.
  std::string Hex() const;
  uint64_t count() const { return count_; }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  uint64_t count_ = 0;
  std::string scratch_;
};

struct RunOutputCounts {
  uint64_t cases = 0;
  uint64_t open_cases = 0;
  int64_t first_day = 0, last_day = 0;  // cohort days covered (local days since 1970-01-01)
};

// Writes dir/cases.jsonl and dir/kpi.json from a store (a replay's, or a live
// engine's for comparing the two; the engine must be stopped).
Result<RunOutputCounts> WriteRunOutput(const storage::Store& store, const Config& config, const std::string& dir);

}  // namespace cityloop::replay
