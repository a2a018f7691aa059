// OffsetQuery: asks the cluster where partitions end (high watermarks), for
// "has the engine caught up with its input?" (run --exit-when-caught-up,
// tests, lag metrics). Holds one librdkafka handle; one thread at a time.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "core/status.h"

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

 private:
  struct Impl;
  explicit OffsetQuery(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace cityloop::ingest
