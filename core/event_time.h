// EventTime: the engine's notion of event time, per input partition.
//
// Each (topic, partition) the engine reads is a "source". A source's
// watermark is the newest event time seen on it minus the allowed lateness:
// input on that source older than its watermark is late. Device-level timers
// (a window closing, a device falling silent) run on the watermark of the
// source the device reports on, so a partition that lags behind the others
// (catch-up after a restart) never makes its devices look silent.
//
// Live mode also moves a source's watermark on from the wall clock: once a
// source has been idle for idle_timeout, its event time advances with the
// wall time elapsed since its last input. Replay mode (live = false) moves
// event time from the log alone, so a replay is deterministic.
//
// Owned and called by one engine thread.
#pragma once

#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace cityloop {

class EventTime {
 public:
  static constexpr int64_t kNone = std::numeric_limits<int64_t>::min();

  EventTime(int64_t allowed_lateness_ms, int64_t idle_timeout_ms, bool live)
      : lateness_(allowed_lateness_ms), idle_timeout_(idle_timeout_ms), live_(live) {}

  // The dense id of a source, created on first use.
  uint16_t Source(std::string_view topic, int32_t partition);

  // Records an event of source at event time ts, read at wall time wall_ms.
  // Returns true when it is late: older than the source's watermark.
  // A late event does not move the watermark.
  bool Observe(uint16_t source, int64_t ts_ms, int64_t wall_ms);

  // Live mode: advances idle sources from the wall clock. Returns true when
  // some watermark moved.
  bool AdvanceIdle(int64_t wall_ms);

  int64_t Watermark(uint16_t source) const { return sources_[source].watermark; }
  int64_t WatermarkOf(std::string_view topic, int32_t partition) const;
  // The lowest and highest watermark over every source (kNone before input).
  int64_t MinWatermark() const;
  int64_t MaxWatermark() const;
  int64_t allowed_lateness_ms() const { return lateness_; }
  size_t source_count() const { return sources_.size(); }

  // Persistence: "<topic>/<partition>" -> newest event time, for the sources
  // changed since the last call; and loading them back.
  std::vector<std::pair<std::string, std::string>> TakeDirty();
  bool Restore(std::string_view subject, std::string_view value, int64_t wall_ms);

 private:
  struct SourceState {
    std::string name;               // "<topic>/<partition>"
    int64_t max_event_ms = kNone;   // newest event time seen
    int64_t watermark = kNone;
    int64_t last_wall_ms = 0;       // wall time of its newest input
    int64_t idle_base_event_ms = kNone;  // live idle advance: event time when it went idle
    bool dirty = false;
  };
  void Raise(SourceState& s, int64_t watermark);

  int64_t lateness_;
  int64_t idle_timeout_;
  bool live_;
  std::vector<SourceState> sources_;
  std::map<std::string, uint16_t, std::less<>> by_name_;
};

}  // namespace cityloop
