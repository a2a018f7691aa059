#include "detect/rule_set.h"

#include <algorithm>

#include "detect/camera_detector.h"
#include "detect/correlation_detector.h"
#include "detect/flapping_detector.h"
#include "detect/no_signal_detector.h"
#include "detect/rate_detector.h"
#include "detect/threshold_detector.h"
#include "detect/window_detector.h"

namespace cityloop::detect {

void RegisterBuiltinRules(RuleRegistry& registry) {
  registry.Register("threshold", [](const RulesOptions& r, const CityModel& city, DeviceTable& devices) {
    return BuildEach<ThresholdDetector>(r.threshold, city, devices);
  });
  registry.Register("rate", &BuildRateRules);
  registry.Register("window", &BuildWindowRules);
  registry.Register("no_signal", &BuildNoSignalRules);
  registry.Register("flapping", &BuildFlappingRules);
  registry.Register("camera", [](const RulesOptions& r, const CityModel& city, DeviceTable& devices) {
    return BuildEach<CameraDetector>(r.camera, city, devices);
  });
  registry.Register("correlation", [](const RulesOptions& r, const CityModel& city, DeviceTable& devices) {
    return BuildEach<CorrelationDetector>(r.correlation, city, devices);
  });
}

namespace {

const RuleRegistry& Registry() {
  static const RuleRegistry* registry = [] {
    RuleRegistry* r = &RuleRegistry::Global();
    RegisterBuiltinRules(*r);
    return r;
  }();
  return *registry;
}

}  // namespace

RuleSet::RuleSet(std::shared_ptr<const CityModel> city, bool live)
    : time_(city->config().event_time.allowed_lateness_ms, city->config().event_time.idle_timeout_ms, live),
      camera_(city) {
  rules_ = Registry().Build(city->config().rules, *city, devices_);
  cities_.push_back(std::move(city));
  Index();
}

RuleSet::~RuleSet() = default;

void RuleSet::Index() {
  by_sensor_kind_.clear();
  every_sensor_.clear();
  detections_.clear();
  correlations_.clear();
  timed_.clear();
  flapping_.clear();
  for (const auto& rule : rules_) {
    for (const std::string& kind : rule->WatchedSensorKinds()) {
      auto it = std::find_if(by_sensor_kind_.begin(), by_sensor_kind_.end(),
                             [&](const auto& e) { return e.first == kind; });
      if (it == by_sensor_kind_.end()) it = by_sensor_kind_.insert(by_sensor_kind_.end(), {kind, {}});
      it->second.push_back(rule.get());
    }
    if (rule->WatchesEverySensor()) every_sensor_.push_back(rule.get());
    if (rule->WatchesDetections()) detections_.push_back(rule.get());
    if (rule->WatchesSignals()) correlations_.push_back(rule.get());
    if (rule->WatchesWatermark()) timed_.push_back(rule.get());
    if (auto* f = dynamic_cast<FlappingDetector*>(rule.get())) flapping_.push_back(f);
  }
}

const Rule* RuleSet::Find(std::string_view id) const {
  for (const auto& r : rules_) {
    if (r->id() == id) return r.get();
  }
  return nullptr;
}

RuleContext RuleSet::Context(std::vector<Signal>* out) {
  RuleContext ctx;
  ctx.city = cities_.back().get();
  ctx.devices = &devices_;
  ctx.time = &time_;
  ctx.signals = out;
  ctx.gate = flapping_.empty() ? nullptr : this;
  return ctx;
}

bool RuleSet::OnTransition(std::string_view rule_id, uint32_t device, int64_t ts_ms, bool raised) {
  if (!raised) recoveries_.push_back({std::string(rule_id), devices_.Id(device), ts_ms});
  bool suppress = false;
  for (FlappingDetector* f : flapping_) {
    if (f->Watches(rule_id)) suppress |= f->OnTransition(rule_id, device, ts_ms, raised, *current_);
  }
  return suppress;
}

Admission RuleSet::Admit(const InputRef& input, int64_t ts_ms, int64_t wall_ms, uint16_t* source, bool* moved) {
  // Most inputs are of the topic before: skip building the source name.
  if (input.topic != last_topic_) {
    last_topic_ = input.topic;
    sources_of_last_topic_.clear();
  }
  const auto p = static_cast<size_t>(std::max(0, input.partition));
  if (p >= sources_of_last_topic_.size()) sources_of_last_topic_.resize(p + 1, -1);
  if (sources_of_last_topic_[p] < 0) sources_of_last_topic_[p] = time_.Source(input.topic, input.partition);
  *source = static_cast<uint16_t>(sources_of_last_topic_[p]);
  const int64_t before = time_.Watermark(*source);
  const bool late = time_.Observe(*source, ts_ms, wall_ms);
  *moved = time_.Watermark(*source) != before;
  if (!late) return Admission::kOnTime;
  const bool apply = cities_.back()->config().event_time.late_policy == LatePolicy::kApply;
  return apply ? Admission::kLateApplied : Admission::kLateDropped;
}

void RuleSet::OfferWatermark(std::vector<Signal>* out) {
  RuleContext ctx = Context(out);
  ctx.watermark_ms = time_.MaxWatermark();
  current_ = &ctx;
  for (Rule* rule : timed_) rule->OnWatermark(ctx);
  current_ = nullptr;
  offered_watermark_ = ctx.watermark_ms;
  // Camera cooldowns and silences are seconds long: looking once a second
  // of event time is enough, and keeps this off the per-reading path.
  const int64_t low = time_.MinWatermark();
  if (camera_expired_at_ == EventTime::kNone || low >= camera_expired_at_ + 1000) {
    camera_expired_at_ = low;
    camera_.Expire([&](uint16_t source) { return time_.Watermark(source); }, out);
  }
}

void RuleSet::Correlate(size_t from, std::vector<Signal>* out) {
  if (correlations_.empty()) return;
  const size_t end = out->size();  // correlations never see each other's signals
  RuleContext ctx = Context(out);
  // Correlations forget member signals by the LOWEST watermark: catching up,
  // one topic or partition runs far ahead, and a member from a lagging one
  // must still find its partner. Signals are few, so keeping them is cheap.
  ctx.watermark_ms = time_.MinWatermark();
  for (size_t i = from; i < end; ++i) {
    const Signal s = (*out)[i];  // a copy: rules append to *out
    for (Rule* rule : correlations_) rule->OnSignal(s, ctx);
  }
}

template <typename Apply>
Admission RuleSet::Run(const InputRef& input, int64_t ts_ms, int64_t wall_ms, std::vector<Signal>* out,
                       Apply apply) {
  uint16_t source = 0;
  bool moved = false;
  const Admission a = Admit(input, ts_ms, wall_ms, &source, &moved);
  if (a == Admission::kLateDropped) return a;
  const size_t from = out->size();
  RuleContext ctx = Context(out);
  ctx.source = source;
  ctx.watermark_ms = time_.Watermark(source);
  current_ = &ctx;
  apply(ctx);
  current_ = nullptr;
  if (moved) OfferWatermark(out);
  Correlate(from, out);
  return a;
}

Admission RuleSet::OnReading(const Reading& r, int64_t wall_ms, std::vector<Signal>* out) {
  return Run(r.input, r.ts_ms, wall_ms, out, [&](RuleContext& ctx) {
    auto kind = std::find_if(by_sensor_kind_.begin(), by_sensor_kind_.end(),
                             [&](const auto& e) { return e.first == r.kind; });
    if (kind == by_sensor_kind_.end() && every_sensor_.empty()) return;
    const uint32_t device = devices_.Intern(r.device_id);
    if (kind != by_sensor_kind_.end()) {
      for (Rule* rule : kind->second) rule->OnReading(r, device, ctx);
    }
    for (Rule* rule : every_sensor_) rule->OnReading(r, device, ctx);
  });
}

Admission RuleSet::OnDetections(const CameraDetections& d, int64_t wall_ms, std::vector<Signal>* out) {
  return Run(d.input, d.ts_ms, wall_ms, out, [&](RuleContext& ctx) {
    camera_.OnDetections(d, ctx.source, out);
    if (detections_.empty()) return;
    const uint32_t camera = devices_.Intern(d.camera_id);
    for (Rule* rule : detections_) rule->OnDetections(d, camera, ctx);
  });
}

Admission RuleSet::OnFrame(const CameraFrame& f, int64_t wall_ms, std::vector<Signal>* out,
                           camera::FrameResult* result) {
  *result = {};
  return Run(f.input, f.ts_ms, wall_ms, out, [&](RuleContext& ctx) { *result = camera_.OnFrame(f, ctx.source, out); });
}

Admission RuleSet::OnReport(const Report& rep, int64_t wall_ms, std::vector<Signal>* out) {
  return Run(rep.input, rep.ts_ms, wall_ms, out, [&](RuleContext&) {
    const Category* cat = cities_.back()->FindCategory(rep.category);
    Signal s;
    s.id = "report:" + rep.report_id;
    s.source = SignalSource::kReport;
    s.category = rep.category;
    s.priority = cat ? cat->priority : Priority::kNormal;
    s.cell = rep.cell;
    s.position = rep.position;
    s.ts_ms = s.fired_ms = rep.ts_ms;
    s.ingest_ms = rep.ingest_ms;
    s.rule_id = "report";
    s.input = rep.input;
    s.attributes = {{"report_id", rep.report_id}, {"channel", rep.channel}};
    if (!rep.text.empty()) s.attributes["text"] = rep.text;
    s.explanation = rep.channel + " report " + rep.report_id + " (" + rep.category + ")";
    out->push_back(std::move(s));
  });
}

Admission RuleSet::Observe(const InputRef& input, int64_t ts_ms, int64_t wall_ms, std::vector<Signal>* out) {
  return Run(input, ts_ms, wall_ms, out, [](RuleContext&) {});
}

void RuleSet::TakeRecoveries(std::vector<Recovery>* out) {
  out->insert(out->end(), recoveries_.begin(), recoveries_.end());
  recoveries_.clear();
}

bool RuleSet::Tick(int64_t wall_ms, std::vector<Signal>* out) {
  if (!time_.AdvanceIdle(wall_ms)) return false;
  const size_t from = out->size();
  OfferWatermark(out);
  Correlate(from, out);
  return true;
}

void RuleSet::Release(const Rule& rule) {
  rule.ForEachStateKey([&](std::string key) { released_.push_back({std::move(key), std::nullopt}); });
}

ReloadSummary RuleSet::Reload(std::shared_ptr<const CityModel> city) {
  ReloadSummary summary;
  std::vector<std::unique_ptr<Rule>> next = Registry().Build(city->config().rules, *city, devices_);
  for (auto& fresh : next) {
    auto old = std::find_if(rules_.begin(), rules_.end(),
                            [&](const std::unique_ptr<Rule>& r) { return r && r->id() == fresh->id(); });
    if (old == rules_.end()) {
      ++summary.added;
    } else if ((*old)->SameConfig(*fresh)) {
      fresh = std::move(*old);  // keeps its state
      ++summary.kept;
    } else {
      Release(**old);
      old->reset();
      ++summary.changed;
    }
  }
  for (const auto& gone : rules_) {
    if (!gone) continue;
    Release(*gone);
    ++summary.removed;
  }
  rules_ = std::move(next);
  cities_.push_back(std::move(city));
  Index();
  return summary;
}

void RuleSet::TakeDirty(std::vector<StateEntry>* out) {
  for (auto& e : released_) out->push_back(std::move(e));
  released_.clear();
  for (const auto& rule : rules_) rule->TakeDirty(out);
  camera_.TakeDirty(out);
  for (auto& [subject, value] : time_.TakeDirty()) {
    out->push_back({std::string(kEventTimePrefix) + subject, std::move(value)});
  }
}

std::vector<std::string> RuleSet::StatePrefixes() {
  std::vector<std::string> prefixes = {
      std::string(kEventTimePrefix),          std::string(ThresholdDetector::kPrefix),
      std::string(RateDetector::kPrefix),     std::string(WindowDetector::kPrefix),
      std::string(NoSignalDetector::kPrefix), std::string(FlappingDetector::kPrefix),
      std::string(CameraDetector::kPrefix),   std::string(CorrelationDetector::kPrefix)};
  for (std::string& p : camera::CameraAnalytics::StatePrefixes()) prefixes.push_back(std::move(p));
  return prefixes;
}

Status RuleSet::Restore(std::string_view key, std::string_view value, int64_t wall_ms) {
  if (key.substr(0, kEventTimePrefix.size()) == kEventTimePrefix) {
    if (!time_.Restore(key.substr(kEventTimePrefix.size()), value, wall_ms)) {
      return Status::DataLoss("bad event-time entry " + std::string(key));
    }
    return Status::Ok();
  }
  for (const std::string& prefix : camera::CameraAnalytics::StatePrefixes()) {
    if (key.substr(0, prefix.size()) != prefix) continue;
    camera_.Restore(key, value);
    return Status::Ok();
  }
  for (const auto& rule : rules_) {
    const std::string_view prefix = rule->state_prefix();
    if (key.substr(0, prefix.size()) != prefix) continue;
    // "<prefix><rule>/<subject>": rule ids hold no '/', subjects may.
    const std::string_view rest = key.substr(prefix.size());
    const size_t slash = rest.find('/');
    if (slash == std::string_view::npos) return Status::DataLoss("bad rule state key " + std::string(key));
    if (rest.substr(0, slash) != rule->id()) continue;
    return rule->Restore(rest.substr(slash + 1), value);
  }
  // The rule was removed from the config while the engine was down.
  released_.push_back({std::string(key), std::nullopt});
  return Status::Ok();
}

size_t RuleSet::StateBytes() const {
  size_t n = 0;
  for (const auto& rule : rules_) n += rule->StateBytes();
  return n;
}

}  // namespace cityloop::detect
