#include "core/model.h"

#include <array>
#include <utility>

#include "core/name_table.h"

namespace cityloop {

std::string InputRef::ToString() const {
  return topic + "/" + std::to_string(partition) + "@" + std::to_string(offset);
}

const char* PriorityName(Priority p) {
  switch (p) {
    case Priority::kUrgent: return "urgent";
    case Priority::kHigh: return "high";
    case Priority::kNormal: return "normal";
    case Priority::kLow: return "low";
  }
  return "normal";
}

std::optional<Priority> ParsePriority(std::string_view s) {
  for (Priority p : {Priority::kUrgent, Priority::kHigh, Priority::kNormal, Priority::kLow}) {
    if (s == PriorityName(p)) return p;
  }
  return std::nullopt;
}

const char* ZoneDetectorName(ZoneDetector d) {
  switch (d) {
    case ZoneDetector::kIntrusion: return "intrusion";
    case ZoneDetector::kStationary: return "stationary";
    case ZoneDetector::kCrowd: return "crowd";
    case ZoneDetector::kCongestion: return "congestion";
    case ZoneDetector::kWrongWay: return "wrong_way";
    case ZoneDetector::kFire: return "fire";
  }
  return "intrusion";
}

std::string ZoneCategory(const CameraZone& zone, const CameraOptions& options, const char* detector) {
  if (!zone.category.empty()) return zone.category;
  auto it = options.categories.find(detector);
  return it == options.categories.end() ? std::string() : it->second;
}

const char* CorrelationScopeName(CorrelationScope s) {
  switch (s) {
    case CorrelationScope::kCell: return "cell";
    case CorrelationScope::kNeighbours: return "neighbours";
    case CorrelationScope::kDistrict: return "district";
    case CorrelationScope::kRadius: return "radius";
  }
  return "cell";
}

const char* SignalSourceName(SignalSource s) {
  switch (s) {
    case SignalSource::kSensor: return "sensor";
    case SignalSource::kCamera: return "camera";
    case SignalSource::kReport: return "report";
    case SignalSource::kCorrelation: return "correlation";
  }
  return "sensor";
}

namespace {
constexpr std::array<std::pair<CaseStatus, const char*>, 14> kStatusNames{{
    {CaseStatus::kDetected, "detected"},
    {CaseStatus::kRegistered, "registered"},
    {CaseStatus::kDispatched, "dispatched"},
    {CaseStatus::kAcknowledged, "acknowledged"},
    {CaseStatus::kEnroute, "enroute"},
    {CaseStatus::kOnScene, "onscene"},
    {CaseStatus::kHandled, "handled"},
    {CaseStatus::kVerifying, "verifying"},
    {CaseStatus::kClosed, "closed"},
    {CaseStatus::kInvalid, "invalid"},
    {CaseStatus::kMerged, "merged"},
    {CaseStatus::kReturned, "returned"},
    {CaseStatus::kSuspended, "suspended"},
    {CaseStatus::kDeferred, "deferred"},
}};
constexpr std::array<std::pair<UnitStatus, const char*>, 5> kUnitStatusNames{{
    {UnitStatus::kAvailable, "available"},
    {UnitStatus::kEnroute, "enroute"},
    {UnitStatus::kOnScene, "onscene"},
    {UnitStatus::kReturning, "returning"},
    {UnitStatus::kUnavailable, "unavailable"},
}};
}  // namespace

const char* CaseStatusName(CaseStatus s) { return NameIn(kStatusNames, s); }
std::optional<CaseStatus> ParseCaseStatus(std::string_view s) { return ParseIn(kStatusNames, s); }
const char* UnitStatusName(UnitStatus s) { return NameIn(kUnitStatusNames, s); }
std::optional<UnitStatus> ParseUnitStatus(std::string_view s) { return ParseIn(kUnitStatusNames, s); }

bool CaseIsOpen(CaseStatus s) {
  return s != CaseStatus::kClosed && s != CaseStatus::kInvalid && s != CaseStatus::kMerged;
}

}  // namespace cityloop

namespace cityloop {

// Newest first: a reopened case's new lead task, not the one handled before.
Task* Case::LeadTask() {
  for (auto t = tasks.rbegin(); t != tasks.rend(); ++t) {
    if (t->lead && TaskIsActive(t->status)) return &*t;
  }
  return nullptr;
}

const Task* Case::LeadTask() const {
  for (auto t = tasks.rbegin(); t != tasks.rend(); ++t) {
    if (t->lead && TaskIsActive(t->status)) return &*t;
  }
  return nullptr;
}

Task* Case::FindTask(std::string_view dept) {
  for (auto t = tasks.rbegin(); t != tasks.rend(); ++t) {
    if (t->department == dept && TaskIsActive(t->status) && t->status != TaskStatus::kHandled) return &*t;
  }
  return nullptr;
}

}  // namespace cityloop
