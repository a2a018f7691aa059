// Building blocks of the rate and window rules (std only, no engine types
// beyond the Aggregate enum of the config):
//
//  * SampleBuffer: the recent readings of one device, ordered by event time,
//    with aggregates over a time range and a compact binary encoding.
//  * Window boundaries: epoch-aligned tumbling and sliding windows.
//  * StateWriter / StateReader: the binary encoding the rule states share.
//
// Aggregates over [from, to):
//   count       number of samples (0 for an empty range)
//   sum         sum of the values in time order (0 for an empty range)
//   min, max, mean
//   percentile  nearest rank: with the n values sorted ascending, the value
//               of 1-based rank ceil(p / 100 * n), p in (0, 100] (p <= 0 is
//               taken as rank 1); p = 50 of {1, 2, 3, 4} is 2, p = 100 the max.
// min, max, mean and percentile of an empty range are not defined: Compute
// returns NaN and *count == 0 tells the caller not to judge it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/config.h"

namespace cityloop::detect {

// Appends the compact binary encoding of rule state: LEB128 varints
// (signed ones zig-zag), doubles as their 8 IEEE bytes (exact round trip),
// strings length-prefixed.
class StateWriter {
 public:
  explicit StateWriter(std::string* out) : out_(out) {}
  void Unsigned(uint64_t v);
  void Signed(int64_t v);
  void Double(double v);
  void String(std::string_view s);
  void Byte(uint8_t b) { out_->push_back(static_cast<char>(b)); }

 private:
  std::string* out_;
};

// Reads what a StateWriter wrote; every call returns false on truncated or
// malformed input (and the reader stays failed).
class StateReader {
 public:
  explicit StateReader(std::string_view in) : in_(in) {}
  bool Unsigned(uint64_t* v);
  bool Signed(int64_t* v);
  bool Double(double* v);
  bool String(std::string* s);
  bool Byte(uint8_t* b);
  // Everything was read and nothing failed.
  bool done() const { return ok_ && pos_ == in_.size(); }
  bool ok() const { return ok_; }

 private:
  std::string_view in_;
  size_t pos_ = 0;
  bool ok_ = true;
};

// The bytes write(StateWriter&) appends.
template <typename Write>
std::string EncodeState(Write write) {
  std::string out;
  StateWriter w(&out);
  write(w);
  return out;
}

// read(StateReader&) -> std::optional<T> over all of bytes: nullopt unless it
// succeeds and consumes every byte.
template <typename Read>
auto DecodeState(std::string_view bytes, Read read) -> decltype(read(std::declval<StateReader&>())) {
  StateReader r(bytes);
  auto value = read(r);
  if (!value || !r.done()) return std::nullopt;
  return value;
}

struct Sample {
  int64_t ts_ms;
  double value;
  bool operator==(const Sample&) const = default;
};

// The samples of one device, ascending by timestamp, at most capacity() of
// them: when full, the oldest sample is dropped (and counted in dropped()).
class SampleBuffer {
 public:
  static constexpr size_t kDefaultCapacity = 256;
  static constexpr size_t kMaxCapacity = 4096;

  explicit SampleBuffer(size_t capacity = kDefaultCapacity);

  // Inserts in timestamp order (input may arrive out of order). A sample
  // whose timestamp is already present is a duplicate: ignored, false. When
  // the buffer is full the oldest sample is dropped; if that is the new one
  // (older than everything held) Insert returns false too.
  bool Insert(int64_t ts_ms, double value);
  // Drops every sample with ts < ts_ms.
  void EvictBefore(int64_t ts_ms);
  // Changes the capacity (dropping the oldest samples beyond it), e.g. after
  // Decode when the rule's configured capacity differs.
  void set_capacity(size_t capacity);

  size_t size() const { return samples_.size(); }
  bool empty() const { return samples_.empty(); }
  size_t capacity() const { return capacity_; }
  // Samples dropped because the buffer was full.
  uint64_t dropped() const { return dropped_; }
  const Sample& oldest() const { return samples_.front(); }
  const Sample& newest() const { return samples_.back(); }
  const std::vector<Sample>& samples() const { return samples_; }
  // The oldest sample with ts >= ts_ms, or null.
  const Sample* FirstAtOrAfter(int64_t ts_ms) const;

  // The aggregate over the samples with from <= ts < to (see the top of this
  // file); *count (may be null) receives the number of samples in range.
  double Compute(Aggregate aggregate, double percentile, int64_t from_ms, int64_t to_ms, int* count) const;

  std::string Encode() const;
  static std::optional<SampleBuffer> Decode(std::string_view bytes);
  void EncodeTo(StateWriter& w) const;
  static std::optional<SampleBuffer> DecodeFrom(StateReader& r);
  // Heap bytes held.
  size_t Bytes() const { return samples_.capacity() * sizeof(Sample); }

  bool operator==(const SampleBuffer&) const = default;

 private:
  std::vector<Sample> samples_;
  size_t capacity_;
  uint64_t dropped_ = 0;
};

// A buffer capacity for a rule that must hold `span_ms` of readings of a
// kind reporting every `interval_ms`: twice the expected count plus slack,
// at least kDefaultCapacity and at most kMaxCapacity.
size_t SampleCapacityFor(int64_t span_ms, int64_t interval_ms);

// Epoch-aligned windows: a window is [end - size, end) with end a multiple of
// slide; tumbling windows have slide == size. slide > size leaves gaps
// (hopping windows): a time in a gap belongs to no window.
struct WindowSpec {
  int64_t size_ms = 0;
  int64_t slide_ms = 0;  // > 0
  int64_t Start(int64_t end_ms) const { return end_ms - size_ms; }
};

// floor(a / b) for b > 0, also for negative a.
int64_t FloorDiv(int64_t a, int64_t b);
// The smallest window end strictly after t.
int64_t FirstEndAfter(const WindowSpec& spec, int64_t t_ms);
// The windows that contain t are those with an end in
// [FirstEndAfter(t), LastEndContaining(t)]; none (first > last) when t lies
// in a gap.
int64_t LastEndContaining(const WindowSpec& spec, int64_t t_ms);
// Every window end in (after, upto], ascending.
std::vector<int64_t> WindowEnds(const WindowSpec& spec, int64_t after_ms, int64_t upto_ms);

// "10m", "90s", "2h", "1d", "250ms": the largest unit that divides ms.
std::string FormatSpanMs(int64_t ms);

}  // namespace cityloop::detect
