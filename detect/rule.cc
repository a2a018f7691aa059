#include "detect/rule.h"

#include <algorithm>

namespace cityloop::detect {

uint32_t DeviceTable::Intern(std::string_view id) {
  if (auto it = index_.find(id); it != index_.end()) return it->second;
  const auto index = static_cast<uint32_t>(ids_.size());
  ids_.emplace_back(id);
  index_.emplace(ids_.back(), index);
  return index;
}

std::optional<uint32_t> DeviceTable::Find(std::string_view id) const {
  if (auto it = index_.find(id); it != index_.end()) return it->second;
  return std::nullopt;
}

RuleRegistry& RuleRegistry::Global() {
  static RuleRegistry registry;
  return registry;
}

void RuleRegistry::Register(std::string kind, RuleFactory factory) {
  for (auto& [k, f] : factories_) {
    if (k == kind) {
      f = std::move(factory);
      return;
    }
  }
  factories_.emplace_back(std::move(kind), std::move(factory));
}

std::vector<std::unique_ptr<Rule>> RuleRegistry::Build(const RulesOptions& rules, const CityModel& city,
                                                       DeviceTable& devices) const {
  std::vector<std::unique_ptr<Rule>> out;
  for (const auto& [kind, factory] : factories_) {
    for (auto& r : factory(rules, city, devices)) out.push_back(std::move(r));
  }
  return out;
}

std::vector<std::string> RuleRegistry::kinds() const {
  std::vector<std::string> out;
  for (const auto& [k, f] : factories_) out.push_back(k);
  return out;
}

Priority RulePriority(const RuleBase& rule, const CityModel& city) {
  if (rule.priority) return *rule.priority;
  const Category* cat = city.FindCategory(rule.category);
  return cat ? cat->priority : Priority::kNormal;
}

Signal RuleSignal(const RuleBase& rule, const CityModel& city, SignalSource source) {
  Signal s;
  s.source = source;
  s.category = rule.category;
  s.priority = RulePriority(rule, city);
  s.rule_id = rule.id;
  s.opens_case = rule.opens_case;
  return s;
}

Signal SignalFromReading(const RuleBase& rule, const CityModel& city, const Reading& r) {
  Signal s = RuleSignal(rule, city, SignalSource::kSensor);
  s.cell = r.cell;
  s.position = r.position;
  s.ts_ms = r.ts_ms;
  s.fired_ms = r.ts_ms;
  s.ingest_ms = r.ingest_ms;
  s.device_id = r.device_id;
  s.sensor_kind = r.kind;
  s.value = r.value;
  s.input = r.input;
  return s;
}

Signal SignalForDevice(const RuleBase& rule, const CityModel& city, const std::string& device_id) {
  Signal s = RuleSignal(rule, city, SignalSource::kSensor);
  s.device_id = device_id;
  if (const Device* d = city.FindDevice(device_id)) {
    s.position = d->position;
    const CellInfo* cell = city.CellAt(d->position);
    s.cell = cell ? cell->index : -1;
    s.sensor_kind = d->kind;
  }
  return s;
}

void DeadlineQueue::Enqueue(uint32_t device, Slot& slot) {
  if (slot.queued != EventTime::kNone) queue_.erase({slot.queued, device});
  slot.queued = slot.deadline;
  if (slot.queued != EventTime::kNone) queue_.emplace(slot.queued, device);
}

void DeadlineQueue::Set(uint32_t device, uint16_t source, int64_t deadline_ms) {
  if (device >= at_.size()) at_.resize(device + 1);
  Slot& slot = at_[device];
  if (slot.deadline == EventTime::kNone) ++live_;
  slot.deadline = deadline_ms;
  slot.source = source;
  // Later than the queued entry: leave it, PopDue moves it when it comes up.
  if (slot.queued == EventTime::kNone || deadline_ms < slot.queued) Enqueue(device, slot);
}

void DeadlineQueue::Cancel(uint32_t device) {
  if (device >= at_.size() || at_[device].deadline == EventTime::kNone) return;
  at_[device].deadline = EventTime::kNone;
  --live_;
}

std::optional<int64_t> DeadlineQueue::DeadlineOf(uint32_t device) const {
  if (device >= at_.size() || at_[device].deadline == EventTime::kNone) return std::nullopt;
  return at_[device].deadline;
}

void DeadlineQueue::PopDue(const EventTime& time, const std::function<void(uint32_t, int64_t)>& visit) {
  const int64_t newest = time.MaxWatermark();
  std::vector<uint32_t> moved;
  std::vector<std::pair<int64_t, uint32_t>> due;
  do {
    // Entries whose deadline moved (or was cancelled) go to their new place
    // first, which may be due too: scan again until none moved.
    for (uint32_t device : moved) Enqueue(device, at_[device]);
    moved.clear();
    due.clear();
    for (auto it = queue_.begin(); it != queue_.end() && it->first <= newest; ++it) {
      const Slot& slot = at_[it->second];
      if (slot.deadline != it->first) {
        moved.push_back(it->second);
      } else if (it->first <= time.Watermark(slot.source)) {
        due.push_back(*it);
      }
    }
  } while (!moved.empty());
  for (const auto& [deadline, device] : due) {
    Slot& slot = at_[device];
    queue_.erase({deadline, device});
    slot.queued = slot.deadline = EventTime::kNone;
    --live_;
    visit(device, deadline);
  }
}

bool AppliesTo(const std::vector<std::string>& devices, std::string_view id) {
  return devices.empty() || std::find(devices.begin(), devices.end(), id) != devices.end();
}

}  // namespace cityloop::detect
