#pragma once
// Injected time source: production uses SystemClock, tests a manual clock.
#include <chrono>
#include <cstdint>

namespace nimbus {

class Clock {
 public:
  virtual ~Clock() = default;
  // Wall-clock time in milliseconds since the Unix epoch.
  virtual int64_t nowMs() const = 0;
};

class SystemClock final : public Clock {
 public:
  int64_t nowMs() const override {
    using namespace std::chrono;
    return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
  }
};

class ManualClock final : public Clock {
 public:
  explicit ManualClock(int64_t startMs = 1'700'000'000'000) : now_(startMs) {}
  int64_t nowMs() const override { return now_; }
  void advanceMs(int64_t ms) { now_ += ms; }

 private:
  int64_t now_;
};

}  // namespace nimbus
