#include "dispatch/sla.h"

#include <algorithm>
#include <cmath>

namespace cityloop::dispatch {

SlaPolicy::SlaPolicy(const Config& config) : options_(config.sla), calendar_(config.sla.calendar) {}

std::optional<SlaLimit> SlaPolicy::LimitFor(std::string_view category, Priority priority, SlaStage stage) const {
  const SlaRule* by_category = nullptr;
  const SlaRule* by_priority = nullptr;
  for (const SlaRule& r : options_.limits) {
    if (r.stage != stage) continue;
    const bool cat = !r.category.empty() && r.category == category;
    if (cat && r.priority == priority) return r.limit;
    if (cat && !r.priority && !by_category) by_category = &r;
    if (r.category.empty() && r.priority == priority && !by_priority) by_priority = &r;
  }
  if (by_category) return by_category->limit;
  if (stage == SlaStage::kHandle) {
    if (auto it = options_.handle_by_category.find(std::string(category)); it != options_.handle_by_category.end()) {
      return it->second;
    }
  }
  if (by_priority) return by_priority->limit;
  if (auto st = options_.by_priority.find(stage); st != options_.by_priority.end()) {
    if (auto it = st->second.find(priority); it != st->second.end() && it->second.amount > 0) return it->second;
  }
  return std::nullopt;
}

bool SlaPolicy::OnWallClock(std::string_view category, Priority priority) const {
  if (options_.urgent_wall_clock && priority == Priority::kUrgent) return true;
  return std::find(options_.wall_clock_categories.begin(), options_.wall_clock_categories.end(), category) !=
         options_.wall_clock_categories.end();
}

void SlaPolicy::Start(SlaClock& k, std::string_view category, Priority priority, SlaStage stage,
                      int64_t start_ms) const {
  k = SlaClock{};
  k.started_ms = start_ms;
  const std::optional<SlaLimit> limit = LimitFor(category, priority, stage);
  if (!limit) return;
  const bool wall = limit->basis == SlaLimit::Basis::kWall || OnWallClock(category, priority);
  k.working_time = !wall;
  if (wall && limit->basis == SlaLimit::Basis::kWorkingDays) {
    k.limit_ms = limit->amount * 86400000;  // urgent: a working day is a day
  } else if (wall) {
    k.limit_ms = limit->amount;
  } else {
    k.limit_ms = calendar_.LimitAmountMs(*limit);
  }
  Recompute(k);
}

int64_t SlaPolicy::Point(const SlaClock& k, int64_t amount_ms) const {
  const int64_t amount = amount_ms + k.paused_total_ms;
  return k.working_time ? calendar_.AddWorking(k.started_ms, amount) : k.started_ms + amount;
}

void SlaPolicy::Recompute(SlaClock& k) const {
  if (k.limit_ms <= 0) {
    k.warn_ms = k.deadline_ms = 0;
    return;
  }
  auto share = [&](double ratio) { return static_cast<int64_t>(std::llround(static_cast<double>(k.limit_ms) * ratio)); };
  k.warn_ms = Point(k, share(options_.warning_ratio));
  k.deadline_ms = Point(k, share(options_.breach_ratio));
}

void SlaPolicy::Extend(SlaClock& k, int64_t by_ms, int64_t now_ms) const {
  if (k.limit_ms <= 0 || by_ms <= 0) return;
  k.limit_ms += by_ms;
  Recompute(k);
  k.light = std::min(k.light, LightAt(k, now_ms));
}

void SlaPolicy::AddPause(SlaClock& k, int64_t from_ms, int64_t to_ms) const {
  if (!k.running()) return;
  k.paused_total_ms += calendar_.Elapsed(from_ms, to_ms, k.working_time);
  Recompute(k);
}

int64_t SlaPolicy::NextDue(const SlaClock& k) {
  if (!k.running() || k.limit_ms <= 0) return kNever;
  if (k.light == SlaLight::kGreen) return k.warn_ms;
  if (k.light == SlaLight::kYellow) return k.deadline_ms;
  return kNever;
}

SlaLight SlaPolicy::LightAt(const SlaClock& k, int64_t t) {
  if (k.limit_ms <= 0 || t < k.warn_ms) return SlaLight::kGreen;
  return t < k.deadline_ms ? SlaLight::kYellow : SlaLight::kRed;
}

double SlaPolicy::Ratio(const SlaClock& k, int64_t t) const {
  if (k.limit_ms <= 0 || k.started_ms == 0) return 0;
  const int64_t end = k.stopped_ms ? k.stopped_ms : t;
  const int64_t used = calendar_.Elapsed(k.started_ms, end, k.working_time) - k.paused_total_ms;
  return static_cast<double>(std::max<int64_t>(0, used)) / static_cast<double>(k.limit_ms);
}

}  // namespace cityloop::dispatch
