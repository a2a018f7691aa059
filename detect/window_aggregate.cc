#include "detect/window_aggregate.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

namespace cityloop {

// Declared in core/config.h; only the detect module names aggregates.
const char* AggregateName(Aggregate a) {
  switch (a) {
    case Aggregate::kCount: return "count";
    case Aggregate::kMin: return "min";
    case Aggregate::kMax: return "max";
    case Aggregate::kMean: return "mean";
    case Aggregate::kSum: return "sum";
    case Aggregate::kPercentile: return "percentile";
  }
  return "?";
}

}  // namespace cityloop

namespace cityloop::detect {

// --- StateWriter / StateReader ---------------------------------------------

void StateWriter::Unsigned(uint64_t v) {
  while (v >= 0x80) {
    Byte(static_cast<uint8_t>(v | 0x80));
    v >>= 7;
  }
  Byte(static_cast<uint8_t>(v));
}

void StateWriter::Signed(int64_t v) {
  const auto u = static_cast<uint64_t>(v);
  Unsigned((u << 1) ^ (v < 0 ? ~uint64_t{0} : uint64_t{0}));
}

void StateWriter::Double(double v) {
  uint64_t bits = 0;
  std::memcpy(&bits, &v, sizeof bits);
  for (int i = 0; i < 8; ++i) Byte(static_cast<uint8_t>(bits >> (8 * i)));
}

void StateWriter::String(std::string_view s) {
  Unsigned(s.size());
  out_->append(s);
}

bool StateReader::Byte(uint8_t* b) {
  if (!ok_ || pos_ >= in_.size()) return ok_ = false;
  *b = static_cast<uint8_t>(in_[pos_++]);
  return true;
}

bool StateReader::Unsigned(uint64_t* v) {
  uint64_t out = 0;
  for (int shift = 0; shift < 64; shift += 7) {
    uint8_t b = 0;
    if (!Byte(&b)) return false;
    out |= uint64_t{b & 0x7Fu} << shift;
    if ((b & 0x80) == 0) {
      *v = out;
      return true;
    }
  }
  return ok_ = false;
}

bool StateReader::Signed(int64_t* v) {
  uint64_t u = 0;
  if (!Unsigned(&u)) return false;
  *v = static_cast<int64_t>((u >> 1) ^ (~(u & 1) + 1));
  return true;
}

bool StateReader::Double(double* v) {
  uint64_t bits = 0;
  for (int i = 0; i < 8; ++i) {
    uint8_t b = 0;
    if (!Byte(&b)) return false;
    bits |= uint64_t{b} << (8 * i);
  }
  std::memcpy(v, &bits, sizeof bits);
  return true;
}

bool StateReader::String(std::string* s) {
  uint64_t n = 0;
  if (!Unsigned(&n)) return false;
  if (n > in_.size() - pos_) return ok_ = false;
  s->assign(in_.substr(pos_, n));
  pos_ += n;
  return true;
}

// --- SampleBuffer ----------------------------------------------------------

namespace {

bool TsLess(const Sample& s, int64_t ts) { return s.ts_ms < ts; }

}  // namespace

SampleBuffer::SampleBuffer(size_t capacity) : capacity_(std::clamp<size_t>(capacity, 1, kMaxCapacity)) {}

bool SampleBuffer::Insert(int64_t ts_ms, double value) {
  // Almost always the newest: append without a search.
  if (samples_.empty() || samples_.back().ts_ms < ts_ms) {
    if (samples_.size() >= capacity_) {
      samples_.erase(samples_.begin());
      ++dropped_;
    }
    samples_.push_back({ts_ms, value});
    return true;
  }
  auto it = std::lower_bound(samples_.begin(), samples_.end(), ts_ms, TsLess);
  if (it != samples_.end() && it->ts_ms == ts_ms) return false;
  if (samples_.size() >= capacity_) {
    ++dropped_;
    if (it == samples_.begin()) return false;  // the new sample is the oldest: it goes
    const auto at = it - samples_.begin() - 1;
    samples_.erase(samples_.begin());
    it = samples_.begin() + at;
  }
  samples_.insert(it, {ts_ms, value});
  return true;
}

void SampleBuffer::EvictBefore(int64_t ts_ms) {
  auto it = std::lower_bound(samples_.begin(), samples_.end(), ts_ms, TsLess);
  samples_.erase(samples_.begin(), it);
}

void SampleBuffer::set_capacity(size_t capacity) {
  capacity_ = std::clamp<size_t>(capacity, 1, kMaxCapacity);
  if (samples_.size() > capacity_) {
    const size_t excess = samples_.size() - capacity_;
    samples_.erase(samples_.begin(), samples_.begin() + static_cast<std::ptrdiff_t>(excess));
    dropped_ += excess;
  }
}

const Sample* SampleBuffer::FirstAtOrAfter(int64_t ts_ms) const {
  auto it = std::lower_bound(samples_.begin(), samples_.end(), ts_ms, TsLess);
  return it == samples_.end() ? nullptr : &*it;
}

double SampleBuffer::Compute(Aggregate aggregate, double percentile, int64_t from_ms, int64_t to_ms,
                             int* count) const {
  auto first = std::lower_bound(samples_.begin(), samples_.end(), from_ms, TsLess);
  auto last = from_ms < to_ms ? std::lower_bound(first, samples_.end(), to_ms, TsLess) : first;
  const auto n = static_cast<int>(last - first);
  if (count != nullptr) *count = n;
  if (aggregate == Aggregate::kCount) return n;
  double sum = 0;
  if (aggregate == Aggregate::kSum || aggregate == Aggregate::kMean) {
    for (auto it = first; it != last; ++it) sum += it->value;
    if (aggregate == Aggregate::kSum) return sum;
  }
  if (n == 0) return std::numeric_limits<double>::quiet_NaN();
  switch (aggregate) {
    case Aggregate::kMean:
      return sum / n;
    case Aggregate::kMin:
      return std::min_element(first, last, [](const Sample& a, const Sample& b) { return a.value < b.value; })
          ->value;
    case Aggregate::kMax:
      return std::max_element(first, last, [](const Sample& a, const Sample& b) { return a.value < b.value; })
          ->value;
    case Aggregate::kPercentile: {
      // Nearest rank; p * n is exact for the usual p, so an integral p / 100 * n stays integral.
      const double rank = percentile > 0 ? std::ceil(percentile * n / 100.0) : 1.0;
      const int k = static_cast<int>(std::clamp(rank, 1.0, static_cast<double>(n))) - 1;
      std::vector<double> values;
      values.reserve(static_cast<size_t>(n));
      for (auto it = first; it != last; ++it) values.push_back(it->value);
      std::nth_element(values.begin(), values.begin() + k, values.end());
      return values[static_cast<size_t>(k)];
    }
    case Aggregate::kCount:
    case Aggregate::kSum:
      break;
  }
  return sum;
}

// Layout: capacity, dropped, n, first ts (signed), then n - 1 positive ts
// deltas, then the n values.
void SampleBuffer::EncodeTo(StateWriter& w) const {
  w.Unsigned(capacity_);
  w.Unsigned(dropped_);
  w.Unsigned(samples_.size());
  for (size_t i = 0; i < samples_.size(); ++i) {
    if (i == 0) {
      w.Signed(samples_[0].ts_ms);
    } else {
      w.Unsigned(static_cast<uint64_t>(samples_[i].ts_ms) - static_cast<uint64_t>(samples_[i - 1].ts_ms));
    }
  }
  for (const Sample& s : samples_) w.Double(s.value);
}

std::optional<SampleBuffer> SampleBuffer::DecodeFrom(StateReader& r) {
  uint64_t capacity = 0, dropped = 0, n = 0;
  if (!r.Unsigned(&capacity) || !r.Unsigned(&dropped) || !r.Unsigned(&n)) return std::nullopt;
  if (capacity < 1 || capacity > kMaxCapacity || n > capacity) return std::nullopt;
  SampleBuffer b(capacity);
  b.dropped_ = dropped;
  b.samples_.resize(n);
  for (size_t i = 0; i < n; ++i) {
    if (i == 0) {
      if (!r.Signed(&b.samples_[0].ts_ms)) return std::nullopt;
      continue;
    }
    uint64_t delta = 0;
    int64_t next = 0;
    if (!r.Unsigned(&delta) || delta == 0 || delta > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) ||
        __builtin_add_overflow(b.samples_[i - 1].ts_ms, static_cast<int64_t>(delta), &next)) {
      return std::nullopt;  // corrupt: times must increase and fit
    }
    b.samples_[i].ts_ms = next;
  }
  for (Sample& s : b.samples_) {
    if (!r.Double(&s.value)) return std::nullopt;
  }
  return b;
}

std::string SampleBuffer::Encode() const {
  return EncodeState([&](StateWriter& w) { EncodeTo(w); });
}

std::optional<SampleBuffer> SampleBuffer::Decode(std::string_view bytes) { return DecodeState(bytes, DecodeFrom); }

size_t SampleCapacityFor(int64_t span_ms, int64_t interval_ms) {
  if (span_ms <= 0 || interval_ms <= 0) return SampleBuffer::kDefaultCapacity;
  const int64_t expected = span_ms / interval_ms + 1;
  const int64_t want = expected > static_cast<int64_t>(SampleBuffer::kMaxCapacity) ? expected : 2 * expected + 16;
  return static_cast<size_t>(std::clamp<int64_t>(want, static_cast<int64_t>(SampleBuffer::kDefaultCapacity),
                                                 static_cast<int64_t>(SampleBuffer::kMaxCapacity)));
}

// --- Windows ---------------------------------------------------------------

int64_t FloorDiv(int64_t a, int64_t b) {
  const int64_t q = a / b;
  return (a % b != 0 && a < 0) ? q - 1 : q;
}

int64_t FirstEndAfter(const WindowSpec& spec, int64_t t_ms) { return (FloorDiv(t_ms, spec.slide_ms) + 1) * spec.slide_ms; }

int64_t LastEndContaining(const WindowSpec& spec, int64_t t_ms) {
  return FloorDiv(t_ms + spec.size_ms, spec.slide_ms) * spec.slide_ms;
}

std::vector<int64_t> WindowEnds(const WindowSpec& spec, int64_t after_ms, int64_t upto_ms) {
  std::vector<int64_t> out;
  for (int64_t e = FirstEndAfter(spec, after_ms); e <= upto_ms; e += spec.slide_ms) out.push_back(e);
  return out;
}

std::string FormatSpanMs(int64_t ms) {
  struct Unit {
    int64_t ms;
    const char* suffix;
  };
  static constexpr Unit kUnits[] = {{86400000, "d"}, {3600000, "h"}, {60000, "m"}, {1000, "s"}};
  if (ms != 0) {
    for (const Unit& u : kUnits) {
      if (ms % u.ms == 0) return std::to_string(ms / u.ms) + u.suffix;
    }
  }
  return std::to_string(ms) + "ms";
}

}  // namespace cityloop::detect
