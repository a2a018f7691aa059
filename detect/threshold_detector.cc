#include "detect/threshold_detector.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>

#include "core/time_util.h"

namespace cityloop::detect {
namespace {

std::string StateKey(std::string_view rule_id, std::string_view device_id) {
  std::string key(kThresholdStatePrefix);
  key.append(rule_id).append("/").append(device_id);
  return key;
}

bool Beyond(ThresholdDirection dir, double v, double level) {
  return dir == ThresholdDirection::kAbove ? v >= level : v <= level;
}

bool MoreExtreme(ThresholdDirection dir, double v, double than) {
  return dir == ThresholdDirection::kAbove ? v > than : v < than;
}

}  // namespace

std::string EncodeThresholdState(const ThresholdState& s) {
  char buf[96];
  std::snprintf(buf, sizeof buf, "%d %lld %lld %.17g", static_cast<int>(s.phase), static_cast<long long>(s.since_ms),
                static_cast<long long>(s.last_ts_ms), s.peak);
  return buf;
}

std::optional<ThresholdState> DecodeThresholdState(std::string_view text) {
  ThresholdState s;
  int phase = 0;
  long long since = 0, last = 0;
  double peak = 0;
  std::string copy(text);
  if (std::sscanf(copy.c_str(), "%d %lld %lld %lg", &phase, &since, &last, &peak) != 4 || phase < 0 || phase > 2) {
    return std::nullopt;
  }
  s.phase = static_cast<ThresholdState::Phase>(phase);
  s.since_ms = since;
  s.last_ts_ms = last;
  s.peak = peak;
  return s;
}

ThresholdDetector::ThresholdDetector(std::shared_ptr<const CityModel> city)
    : city_(std::move(city)), rules_(city_->config().rules.threshold), states_(rules_.size()) {
  for (size_t i = 0; i < rules_.size(); ++i) rules_by_kind_[rules_[i].sensor_kind].push_back(i);
}

bool ThresholdDetector::Watches(std::string_view kind) const {
  return rules_by_kind_.count(std::string(kind)) > 0;
}

ThresholdDetector::Params ThresholdDetector::ParamsFor(const ThresholdRule& rule, const std::string& device_id) const {
  Params p{rule.raise, rule.clear, rule.min_duration_ms};
  if (auto it = rule.overrides.find(device_id); it != rule.overrides.end()) {
    if (it->second.raise) p.raise = *it->second.raise;
    if (it->second.clear) p.clear = *it->second.clear;
    else if (it->second.raise) p.clear = *it->second.raise;
    if (it->second.min_duration_ms) p.min_duration_ms = *it->second.min_duration_ms;
  }
  return p;
}

bool ThresholdDetector::Active(const ThresholdRule& rule, int64_t ts_ms) const {
  if (!rule.active_hours) return true;
  const auto [from, to] = *rule.active_hours;
  const int h = LocalHour(ts_ms, city_->config().city.utc_offset_minutes);
  return from <= to ? (h >= from && h < to) : (h >= from || h < to);
}

Signal ThresholdDetector::MakeSignal(const ThresholdRule& rule, const Reading& r, const ThresholdState& st,
                                     const Params& p) const {
  Signal s;
  s.id = rule.id + ":" + r.device_id + ":" + std::to_string(st.since_ms);
  s.source = SignalSource::kSensor;
  s.category = rule.category;
  const Category* cat = city_->FindCategory(rule.category);
  s.priority = rule.priority.value_or(cat ? cat->priority : Priority::kNormal);
  s.cell = r.cell;
  s.position = r.position;
  s.ts_ms = st.since_ms;
  s.fired_ms = r.ts_ms;
  s.ingest_ms = r.ingest_ms;
  s.device_id = r.device_id;
  s.sensor_kind = r.kind;
  s.rule_id = rule.id;
  s.value = st.peak;
  s.threshold = p.raise;
  s.input = r.input;
  return s;
}

void ThresholdDetector::OnReading(const Reading& r, std::vector<Signal>* out) {
  auto it = rules_by_kind_.find(r.kind);
  if (it == rules_by_kind_.end()) return;
  for (size_t rule_index : it->second) {
    const ThresholdRule* rule = &rules_[rule_index];
    if (!rule->devices.empty() &&
        std::find(rule->devices.begin(), rule->devices.end(), r.device_id) == rule->devices.end()) {
      continue;
    }
    ++stats_.evaluated;
    auto [node, inserted] = states_[rule_index].try_emplace(r.device_id);
    ThresholdState& st = node->second.state;
    if (!inserted && r.ts_ms < st.last_ts_ms) {
      ++stats_.out_of_order;
      continue;
    }
    st.last_ts_ms = r.ts_ms;
    const Params p = ParamsFor(*rule, r.device_id);
    // Outside its active hours a rule holds nothing: a lamp that is off by day is normal.
    const bool beyond = Active(*rule, r.ts_ms) && Beyond(rule->direction, r.value, p.raise);
    switch (st.phase) {
      case ThresholdState::Phase::kNormal:
        if (beyond) {
          st.phase = ThresholdState::Phase::kPending;
          st.since_ms = r.ts_ms;
          st.peak = r.value;
        }
        break;
      case ThresholdState::Phase::kPending:
        if (!beyond) {
          st.phase = ThresholdState::Phase::kNormal;
        } else if (MoreExtreme(rule->direction, r.value, st.peak)) {
          st.peak = r.value;
        }
        break;
      case ThresholdState::Phase::kAlarm: {
        const bool cleared = !Active(*rule, r.ts_ms) || !Beyond(rule->direction, r.value, p.clear);
        if (cleared) st.phase = ThresholdState::Phase::kNormal;
        break;
      }
    }
    if (st.phase == ThresholdState::Phase::kPending && r.ts_ms - st.since_ms >= p.min_duration_ms) {
      st.phase = ThresholdState::Phase::kAlarm;
      ++stats_.fired;
      out->push_back(MakeSignal(*rule, r, st, p));
    }
    // Every applied reading moves last_ts, so the pair is persisted with the batch's offsets.
    if (!node->second.dirty) {
      node->second.dirty = true;
      dirty_.emplace_back(rule_index, &*node);
    }
  }
}

std::vector<std::pair<std::string, std::string>> ThresholdDetector::TakeDirty() {
  std::vector<std::pair<std::string, std::string>> out;
  out.reserve(dirty_.size());
  for (auto& [rule_index, node] : dirty_) {
    node->second.dirty = false;
    out.emplace_back(StateKey(rules_[rule_index].id, node->first), EncodeThresholdState(node->second.state));
  }
  dirty_.clear();
  return out;
}

Status ThresholdDetector::Restore(std::string_view key, std::string_view value) {
  auto st = DecodeThresholdState(value);
  if (!st || key.substr(0, kThresholdStatePrefix.size()) != kThresholdStatePrefix) {
    return Status::DataLoss("bad threshold state for " + std::string(key));
  }
  // "thr/<rule>/<device>": rule ids hold no '/', device ids may.
  const std::string_view rest = key.substr(kThresholdStatePrefix.size());
  const size_t slash = rest.find('/');
  if (slash == std::string_view::npos) return Status::DataLoss("bad threshold state key " + std::string(key));
  const size_t index = RuleIndex(rest.substr(0, slash));
  if (index == rules_.size()) return Status::Ok();  // the rule was removed from the config: drop its state
  states_[index][std::string(rest.substr(slash + 1))].state = *st;
  return Status::Ok();
}

size_t ThresholdDetector::RuleIndex(std::string_view rule_id) const {
  for (size_t i = 0; i < rules_.size(); ++i) {
    if (rules_[i].id == rule_id) return i;
  }
  return rules_.size();
}

const ThresholdState* ThresholdDetector::StateFor(std::string_view rule_id, std::string_view device_id) const {
  const size_t index = RuleIndex(rule_id);
  if (index == rules_.size()) return nullptr;
  auto it = states_[index].find(std::string(device_id));
  return it == states_[index].end() ? nullptr : &it->second.state;
}

}  // namespace cityloop::detect
