#include "core/model.h"

#include <array>
#include <utility>

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
constexpr std::array<std::pair<CaseStatus, const char*>, 13> kStatusNames{{
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
}};
}  // namespace

const char* CaseStatusName(CaseStatus s) {
  for (const auto& [status, name] : kStatusNames) {
    if (status == s) return name;
  }
  return "detected";
}

std::optional<CaseStatus> ParseCaseStatus(std::string_view s) {
  for (const auto& [status, name] : kStatusNames) {
    if (s == name) return status;
  }
  return std::nullopt;
}

bool CaseIsOpen(CaseStatus s) {
  return s != CaseStatus::kClosed && s != CaseStatus::kInvalid && s != CaseStatus::kMerged;
}

}  // namespace cityloop
