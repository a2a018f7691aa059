// Clock: the only way code learns the time. SystemClock reads the wall clock;
// ManualClock is set by tests and by replay. Both are safe to read from any
// thread; ManualClock may be advanced from any thread.
#pragma once

#include <atomic>
#include <cstdint>

namespace cityloop {

class Clock {
 public:
  virtual ~Clock() = default;
  // Milliseconds since the Unix epoch.
  virtual int64_t now_ms() const = 0;
};

class SystemClock final : public Clock {
 public:
  int64_t now_ms() const override;
  static const SystemClock& instance();
};

class ManualClock final : public Clock {
 public:
  explicit ManualClock(int64_t start_ms = 0) : now_(start_ms) {}
  int64_t now_ms() const override { return now_.load(std::memory_order_acquire); }
  void set_ms(int64_t ms) { now_.store(ms, std::memory_order_release); }
  void advance_ms(int64_t delta) { now_.fetch_add(delta, std::memory_order_acq_rel); }

 private:
  std::atomic<int64_t> now_;
};

}  // namespace cityloop
