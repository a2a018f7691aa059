#include "detect/correlation_detector.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>

#include <nlohmann/json.hpp>

namespace cityloop::detect {
namespace {

// The remembered signals as JSON: [[id, rule, cell, lat, lon, ts, ingest, value], ...].
std::string EncodeSeen(const std::deque<CorrelationDetector::Seen>& list) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& s : list) {
    out.push_back({s.id, s.rule_id, s.cell, s.position.lat, s.position.lon, s.ts_ms, s.ingest_ms, s.value});
  }
  return out.dump();
}

std::optional<std::deque<CorrelationDetector::Seen>> DecodeSeen(std::string_view text) {
  const nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!j.is_array()) return std::nullopt;
  std::deque<CorrelationDetector::Seen> out;
  for (const auto& e : j) {
    if (!e.is_array() || e.size() != 8 || !e[0].is_string() || !e[1].is_string() || !e[2].is_number_integer() ||
        !e[3].is_number() || !e[4].is_number() || !e[5].is_number_integer() || !e[6].is_number_integer() ||
        !e[7].is_number()) {
      return std::nullopt;
    }
    out.push_back({e[0].get<std::string>(), e[1].get<std::string>(), e[2].get<int>(),
                   {e[3].get<double>(), e[4].get<double>()}, e[5].get<int64_t>(), e[6].get<int64_t>(),
                   e[7].get<double>()});
  }
  return out;
}

}  // namespace

CorrelationDetector::CorrelationDetector(const CorrelationRule& rule, const CityModel& city, DeviceTable&)
    : ConfiguredRule(rule),
      city_(city),
      recent_(rule.when.size()),
      newest_(rule.when.size(), EventTime::kNone),
      dirty_(rule.when.size(), 0) {}

bool CorrelationDetector::Matches(const CorrelationMember& m, const Signal& s) const {
  return m.rule.empty() ? m.category == s.category : m.rule == s.rule_id;
}

bool CorrelationDetector::InScope(const Seen& a, const Seen& b) const {
  const CorrelationRule& rule = config();
  switch (rule.scope) {
    case CorrelationScope::kCell:
      return a.cell == b.cell;
    case CorrelationScope::kNeighbours: {
      if (a.cell == b.cell) return true;
      const auto& grid = city_.grid();
      return std::abs(grid.Row(a.cell) - grid.Row(b.cell)) <= 1 && std::abs(grid.Col(a.cell) - grid.Col(b.cell)) <= 1;
    }
    case CorrelationScope::kDistrict:
      return city_.Cell(a.cell).district == city_.Cell(b.cell).district;
    case CorrelationScope::kRadius:
      return DistanceMeters(a.position, b.position) <= rule.radius_m;
  }
  return false;
}

void CorrelationDetector::Forget(size_t member, int64_t lowest_watermark) {
  // A member's signal can still pair while some input partition has not yet
  // passed it (the lowest watermark), and while some other member has not
  // produced a signal `within` past it: a topic a catching-up consumer has
  // not read at all yet has no watermark to wait for.
  int64_t others = lowest_watermark;
  for (size_t k = 0; k < recent_.size(); ++k) {
    if (k != member) others = std::min(others, newest_[k]);
  }
  auto& list = recent_[member];
  const int64_t before = others == EventTime::kNone ? EventTime::kNone : others - config().within_ms;
  while (!list.empty() && (list.front().ts_ms < before || list.size() > kMaxRemembered)) {
    list.pop_front();
    dirty_[member] = 1;
  }
}

void CorrelationDetector::OnSignal(const Signal& s, RuleContext& ctx) {
  const CorrelationRule& rule = config();
  if (s.source == SignalSource::kCorrelation || s.cell < 0) return;
  const Seen seen{s.id, s.rule_id, s.cell, s.position, s.ts_ms, s.ingest_ms, s.value};
  bool member = false;
  for (size_t m = 0; m < rule.when.size(); ++m) {
    if (!Matches(rule.when[m], s)) continue;
    newest_[m] = std::max(newest_[m], s.ts_ms);
    auto& list = recent_[m];
    if (std::any_of(list.begin(), list.end(), [&](const Seen& x) { return x.id == s.id; })) continue;
    // Kept in event-time order: signals of different sources arrive interleaved.
    auto at = std::upper_bound(list.begin(), list.end(), s.ts_ms,
                               [](int64_t ts, const Seen& x) { return ts < x.ts_ms; });
    list.insert(at, seen);
    dirty_[m] = 1;
    member = true;
  }
  for (size_t m = 0; m < rule.when.size(); ++m) Forget(m, ctx.watermark_ms);
  if (!member) return;

  // Every member needs a partner of `seen`: the newest in scope and in time.
  std::vector<std::pair<size_t, size_t>> picks;  // (member, index in recent_)
  for (size_t m = 0; m < rule.when.size(); ++m) {
    const auto& list = recent_[m];
    std::optional<size_t> pick;
    for (size_t i = list.size(); i-- > 0;) {
      const Seen& x = list[i];
      if (std::llabs(x.ts_ms - seen.ts_ms) <= rule.within_ms && InScope(seen, x) &&
          std::none_of(picks.begin(), picks.end(),
                       [&](const auto& p) { return recent_[p.first][p.second].id == x.id; })) {
        pick = i;
        break;
      }
    }
    if (!pick) return;
    picks.emplace_back(m, *pick);
  }

  Signal out = RuleSignal(rule, city_, SignalSource::kCorrelation);
  out.absorb_members = rule.absorb;
  out.ts_ms = INT64_MAX;
  const Seen& lead = recent_[picks.front().first][picks.front().second];  // the first `when` member places it
  out.cell = lead.cell;
  out.position = lead.position;
  out.device_id = s.device_id;
  out.input = s.input;
  out.fired_ms = s.fired_ms;
  out.ingest_ms = s.ingest_ms;
  std::string names;
  for (const auto& [m, i] : picks) {
    const Seen& x = recent_[m][i];
    out.members.push_back(x.id);
    out.ts_ms = std::min(out.ts_ms, x.ts_ms);
    names += (names.empty() ? "" : " + ") + (rule.when[m].rule.empty() ? rule.when[m].category : rule.when[m].rule);
  }
  out.id = rule.id + ":" + std::to_string(lead.cell) + ":" + std::to_string(out.ts_ms);
  out.explanation = names + " within " + std::to_string(rule.within_ms / 60000) + " min, " +
                    CorrelationScopeName(rule.scope) + " scope";
  out.attributes = {{"members", std::to_string(picks.size())}, {"scope", CorrelationScopeName(rule.scope)}};
  // Each member signal takes part in one combination only.
  std::sort(picks.begin(), picks.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
  for (const auto& [m, i] : picks) {
    recent_[m].erase(recent_[m].begin() + static_cast<std::ptrdiff_t>(i));
    dirty_[m] = 1;
  }
  ctx.signals->push_back(std::move(out));
}

void CorrelationDetector::TakeDirty(std::vector<StateEntry>* out) {
  for (size_t m = 0; m < recent_.size(); ++m) {
    if (!dirty_[m]) continue;
    dirty_[m] = 0;
    out->push_back({std::string(kPrefix) + id() + "/" + std::to_string(m), EncodeSeen(recent_[m])});
  }
}

Status CorrelationDetector::Restore(std::string_view subject, std::string_view value) {
  char* end = nullptr;
  const std::string text(subject);
  const unsigned long m = std::strtoul(text.c_str(), &end, 10);
  auto list = DecodeSeen(value);
  if (end == text.c_str() || *end != '\0' || !list) {
    return Status::DataLoss("bad correlation state " + id() + "/" + text);
  }
  if (m < recent_.size()) {
    recent_[m] = std::move(*list);
    // What the list still holds is a lower bound of what the member has seen.
    for (const Seen& x : recent_[m]) newest_[m] = std::max(newest_[m], x.ts_ms);
  }
  return Status::Ok();
}

void CorrelationDetector::ForEachStateKey(const std::function<void(std::string)>& visit) const {
  for (size_t m = 0; m < recent_.size(); ++m) visit(std::string(kPrefix) + id() + "/" + std::to_string(m));
}

size_t CorrelationDetector::StateBytes() const {
  size_t n = 0;
  for (const auto& list : recent_) n += list.size() * (sizeof(Seen) + 48);
  return n;
}

}  // namespace cityloop::detect
