// LiveSummary: the human-readable status `cityloop run --summary` prints to
// stdout every few seconds — input rate, rejects, cases opened by category,
// department and district — read from the metrics registry.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>

#include "core/clock.h"
#include "core/metrics.h"

namespace cityloop::app {

class LiveSummary {
 public:
  LiveSummary(const MetricsRegistry& metrics, const Clock& clock, int utc_offset_minutes, std::FILE* out = stdout);
  // Prints when at least interval_ms passed since the last print.
  void MaybePrint(int64_t interval_ms = 2000);
  void Print();
  std::string Render();

 private:
  const MetricsRegistry& metrics_;
  const Clock& clock_;
  int utc_offset_minutes_;
  std::FILE* out_;
  int64_t last_ms_ = 0;
  int64_t last_messages_ = 0;
};

}  // namespace cityloop::app
