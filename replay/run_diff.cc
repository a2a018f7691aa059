#include "replay/run_diff.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <string_view>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "core/time_util.h"

namespace cityloop::replay {
namespace {

using nlohmann::json;

// Pass 3 pairs cases whose active intervals are at most this far apart: a
// changed debounce or merge window moves a case's start by minutes, not hours.
constexpr int64_t kNearbyMs = 10 * 60 * 1000;

// ---------------------------------------------------------------------------
// Tolerant field access: a field of an older output may be missing or null,
// and a diff should still come out rather than throw.

const json& Null() {
  static const json kNull;
  return kNull;
}

const json& Field(const json& j, const std::string& key) {
  if (!j.is_object()) return Null();
  auto it = j.find(key);
  return it == j.end() ? Null() : *it;
}

std::string Str(const json& j, const std::string& key) {
  const json& v = Field(j, key);
  return v.is_string() ? v.get<std::string>() : std::string();
}

int64_t Int(const json& j, const std::string& key) {
  const json& v = Field(j, key);
  return v.is_number() ? v.get<int64_t>() : 0;
}

// The field if it is an array, else an empty one.
const json& Items(const json& j, const std::string& key) {
  static const json kEmpty = json::array();
  const json& v = Field(j, key);
  return v.is_array() ? v : kEmpty;
}

// The field if it is an object, else an empty one.
const json& Obj(const json& j, const std::string& key) {
  static const json kEmpty = json::object();
  const json& v = Field(j, key);
  return v.is_object() ? v : kEmpty;
}

// The keys of either object, ascending.
std::set<std::string> KeysOf(const json& a, const json& b) {
  std::set<std::string> keys;
  for (const json* j : {&a, &b}) {
    if (!j->is_object()) continue;
    for (const auto& item : j->items()) keys.insert(item.key());
  }
  return keys;
}

// RFC 3339 without the milliseconds when they are zero, as operators read it.
std::string TimeText(int64_t ms) {
  std::string s = FormatRfc3339Ms(ms);
  if (ms % 1000 == 0 && s.size() > 5) s.erase(s.size() - 5, 4);  // ".000Z" -> "Z"
  return s;
}

json TimeOrNull(int64_t ms) { return ms == 0 ? json(nullptr) : json(TimeText(ms)); }

// ---------------------------------------------------------------------------
// Loading a run directory.

struct Run {
  std::string dir;
  std::vector<json> cases;  // ascending by id
  json kpi;                 // an object
  json summary;             // null when there is no summary.json
};

Result<std::string> ReadText(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) return Status::NotFound(path + ": not found");
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  if (!in || in.bad()) return Status::IoError(path + ": cannot read");
  return text.str();
}

// Parses text that starts on line first_line of path; a syntax error is
// reported by the file's own line and column, not nlohmann's (which would
// say "line 1" for every record of a JSON-lines file).
Result<json> ParseJson(const std::string& text, const std::string& path, size_t first_line) {
  try {
    return json::parse(text);
  } catch (const json::parse_error& e) {
    const size_t end = std::min(e.byte > 0 ? e.byte - 1 : 0, text.size());
    const std::string_view before(text.data(), end);
    const size_t line = first_line + static_cast<size_t>(std::count(before.begin(), before.end(), '\n'));
    const size_t line_start = before.rfind('\n');
    const size_t column = end - (line_start == std::string_view::npos ? 0 : line_start + 1) + 1;
    return Status::DataLoss(fmt::format("{}:{}: not valid JSON (column {})", path, line, column));
  }
}

Result<std::vector<json>> ReadCases(const std::string& path) {
  auto text = ReadText(path);
  if (!text.ok()) return text.status();
  std::vector<json> cases;
  std::map<std::string, size_t> line_of_id;  // duplicates would make matching ambiguous
  std::istringstream lines(*text);
  std::string line;
  for (size_t n = 1; std::getline(lines, line); ++n) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    auto record = ParseJson(line, path, n);
    if (!record.ok()) return record.status();
    const std::string id = Str(*record, "id");
    if (id.empty()) return Status::DataLoss(fmt::format("{}:{}: not a case (no \"id\")", path, n));
    if (auto [it, fresh] = line_of_id.emplace(id, n); !fresh) {
      return Status::DataLoss(fmt::format("{}:{}: case {} already on line {}", path, n, id, it->second));
    }
    cases.push_back(std::move(*record));
  }
  std::sort(cases.begin(), cases.end(),
            [](const json& x, const json& y) { return Str(x, "id") < Str(y, "id"); });
  return cases;
}

Result<json> ReadJsonObject(const std::string& path) {
  auto text = ReadText(path);
  if (!text.ok()) return text.status();
  auto j = ParseJson(*text, path, 1);
  if (!j.ok()) return j.status();
  if (!j->is_object()) return Status::DataLoss(path + ":1: not a JSON object");
  return j;
}

Result<Run> LoadRun(const std::string& dir) {
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec)) return Status::NotFound(dir + ": no such run directory");
  Run run;
  run.dir = dir;
  auto cases = ReadCases(dir + "/cases.jsonl");
  if (!cases.ok()) return cases.status();
  run.cases = std::move(*cases);
  auto kpi = ReadJsonObject(dir + "/kpi.json");
  if (!kpi.ok()) return kpi.status();
  run.kpi = std::move(*kpi);
  const std::string summary_path = dir + "/summary.json";
  if (std::filesystem::exists(summary_path, ec)) {  // optional: older runs have none
    auto summary = ReadJsonObject(summary_path);
    if (!summary.ok()) return summary.status();
    run.summary = std::move(*summary);
  }
  return run;
}

// ---------------------------------------------------------------------------
// Matching cases across runs.

// What matching needs of a case, extracted once.
struct CaseView {
  const json* c = nullptr;
  std::string id;
  std::string origin;  // the first signal's device_id, else its signal id
  int64_t first_event = 0;
  int64_t last_event = 0;            // max(last_signal, first_event)
  std::vector<std::string> signals;  // signal ids, ascending
  std::vector<std::string> places;   // "device:<id>", "grid:<code>" for device-less signals; ascending
};

void SortUnique(std::vector<std::string>* v) {
  std::sort(v->begin(), v->end());
  v->erase(std::unique(v->begin(), v->end()), v->end());
}

CaseView ViewOf(const json& c) {
  CaseView v;
  v.c = &c;
  v.id = Str(c, "id");
  v.first_event = Int(c, "first_event");
  v.last_event = std::max(Int(c, "last_signal"), v.first_event);
  const std::string grid = Str(c, "grid");
  const json& signals = Items(c, "signals");
  for (const json& s : signals) {
    if (std::string id = Str(s, "id"); !id.empty()) v.signals.push_back(std::move(id));
    const std::string device = Str(s, "device_id");
    if (!device.empty()) {
      v.places.push_back("device:" + device);
    } else if (!grid.empty()) {
      v.places.push_back("grid:" + grid);
    }
  }
  if (signals.empty() && !grid.empty()) v.places.push_back("grid:" + grid);
  if (!signals.empty()) {
    v.origin = Str(signals[0], "device_id");
    if (v.origin.empty()) v.origin = Str(signals[0], "id");
  }
  SortUnique(&v.signals);
  SortUnique(&v.places);
  return v;
}

enum class MatchKind { kId, kSignal, kDeviceTime };

const char* MatchKindName(MatchKind kind) {
  switch (kind) {
    case MatchKind::kId: return "id";
    case MatchKind::kSignal: return "signal";
    case MatchKind::kDeviceTime: return "device_time";
  }
  return "?";
}

struct Pair {
  size_t a = 0, b = 0;  // indexes into the id-sorted cases
  MatchKind kind = MatchKind::kId;
};

struct Matching {
  Matching(size_t a_count, size_t b_count) : a_paired(a_count), b_paired(b_count) {}
  void Add(size_t a, size_t b, MatchKind kind) {
    a_paired[a] = b_paired[b] = true;
    pairs.push_back({a, b, kind});
  }
  std::vector<bool> a_paired, b_paired;
  std::vector<Pair> pairs;
};

// Pass 1: the same id is only the same case when it started from the same
// signal at the same time; otherwise the id was reused after a renumbering.
void MatchById(const std::vector<CaseView>& a, const std::vector<CaseView>& b, Matching* m) {
  std::map<std::string_view, size_t> b_by_id;
  for (size_t j = 0; j < b.size(); ++j) b_by_id.emplace(b[j].id, j);
  for (size_t i = 0; i < a.size(); ++i) {
    auto it = b_by_id.find(a[i].id);
    if (it == b_by_id.end()) continue;
    const CaseView& other = b[it->second];
    if (a[i].origin == other.origin && a[i].first_event == other.first_event) m->Add(i, it->second, MatchKind::kId);
  }
}

size_t SharedCount(const std::vector<std::string>& x, const std::vector<std::string>& y) {
  size_t n = 0;
  for (auto i = x.begin(), j = y.begin(); i != x.end() && j != y.end();) {
    if (*i < *j) {
      ++i;
    } else if (*j < *i) {
      ++j;
    } else {
      ++n, ++i, ++j;
    }
  }
  return n;
}

// Pass 2 score: how many signals the cases share.
std::optional<int64_t> SignalScore(const CaseView& a, const CaseView& b) {
  return static_cast<int64_t>(SharedCount(a.signals, b.signals));
}

// Pass 3 score: the overlap of the active intervals (negative: the gap), if
// they are close enough to be the same incident.
std::optional<int64_t> DeviceTimeScore(const CaseView& a, const CaseView& b) {
  const int64_t overlap = std::min(a.last_event, b.last_event) - std::max(a.first_event, b.first_event);
  if (overlap < -kNearbyMs) return std::nullopt;
  return overlap;
}

// One greedy pass over the unpaired cases: candidates are the pairs sharing a
// key, ranked by score (nullopt: not a candidate); the best score wins, ties
// to the smaller A then B index, which is id order.
void MatchGreedy(const std::vector<CaseView>& a, const std::vector<CaseView>& b,
                 std::vector<std::string> CaseView::*keys,
                 std::optional<int64_t> (*score_of)(const CaseView&, const CaseView&), MatchKind kind,
                 Matching* m) {
  std::map<std::string_view, std::vector<size_t>> b_by_key;
  for (size_t j = 0; j < b.size(); ++j) {
    if (m->b_paired[j]) continue;
    for (const std::string& k : b[j].*keys) b_by_key[k].push_back(j);
  }
  struct Candidate {
    int64_t score;
    size_t a, b;
  };
  std::vector<Candidate> candidates;
  for (size_t i = 0; i < a.size(); ++i) {
    if (m->a_paired[i]) continue;
    std::set<size_t> seen;
    for (const std::string& k : a[i].*keys) {
      auto it = b_by_key.find(k);
      if (it == b_by_key.end()) continue;
      for (size_t j : it->second) {
        if (!seen.insert(j).second) continue;
        if (auto score = score_of(a[i], b[j])) candidates.push_back({*score, i, j});
      }
    }
  }
  std::sort(candidates.begin(), candidates.end(), [](const Candidate& x, const Candidate& y) {
    if (x.score != y.score) return x.score > y.score;
    return std::pair(x.a, x.b) < std::pair(y.a, y.b);
  });
  for (const Candidate& c : candidates) {
    if (!m->a_paired[c.a] && !m->b_paired[c.b]) m->Add(c.a, c.b, kind);
  }
}

Matching MatchCases(const std::vector<CaseView>& a, const std::vector<CaseView>& b) {
  Matching m(a.size(), b.size());
  MatchById(a, b, &m);
  MatchGreedy(a, b, &CaseView::signals, SignalScore, MatchKind::kSignal, &m);
  MatchGreedy(a, b, &CaseView::places, DeviceTimeScore, MatchKind::kDeviceTime, &m);
  std::sort(m.pairs.begin(), m.pairs.end(), [](const Pair& x, const Pair& y) { return x.a < y.a; });
  return m;
}

// ---------------------------------------------------------------------------
// Comparing a pair of cases.

struct SlaStage {
  const char* name;
  bool on_task;  // the clock is on the lead task, not on the case
};
constexpr SlaStage kSlaStages[] = {
    {"acknowledge", true}, {"arrive", true}, {"handle", true}, {"verify", false}, {"close", false}};

// The first task with lead true, else the first task (null when none).
const json& LeadTask(const json& c) {
  const json& tasks = Items(c, "tasks");
  for (const json& t : tasks) {
    if (Field(t, "lead") == true) return t;
  }
  return tasks.empty() ? Null() : tasks[0];
}

std::string SlaOutcome(const json& clock) {
  if (!clock.is_object()) return "none";
  const std::string light = Str(clock, "light");
  if (light == "red") return "breached";
  std::string outcome = Int(clock, "stopped") != 0 ? "met" : "open";
  if (light == "yellow") outcome += " (warned)";
  return outcome;
}

json SlaOutcomes(const json& c) {
  json out = json::object();
  const json& lead = LeadTask(c);
  for (const SlaStage& stage : kSlaStages) {
    out[stage.name] = SlaOutcome(Field(stage.on_task ? lead : c, std::string(stage.name) + "_clock"));
  }
  return out;
}

// One field of every task, in task order: the routing of a case.
json TaskColumn(const json& c, const char* key) {
  json out = json::array();
  for (const json& t : Items(c, "tasks")) out.push_back(Str(t, key));
  return out;
}

constexpr const char* kCaseFields[] = {"category", "priority", "status", "department", "recommended_unit"};

json CaseChanges(const json& a, const json& b) {
  json changes = json::array();
  auto note = [&changes](const std::string& field, const json& va, const json& vb) {
    if (va != vb) changes.push_back({{"field", field}, {"a", va}, {"b", vb}});
  };
  for (const char* f : kCaseFields) note(f, Str(a, f), Str(b, f));
  note("task_departments", TaskColumn(a, "department"), TaskColumn(b, "department"));
  note("task_units", TaskColumn(a, "unit"), TaskColumn(b, "unit"));
  const json sla_a = SlaOutcomes(a), sla_b = SlaOutcomes(b);
  for (const SlaStage& stage : kSlaStages) {
    note(std::string("sla.") + stage.name, sla_a.at(stage.name), sla_b.at(stage.name));
  }
  return changes;
}

// ---------------------------------------------------------------------------
// Numbers (KPI values and event counts): null-safe, doubles compared with a
// relative tolerance so a rate recomputed in another order is not a delta.

bool SameValue(const json& a, const json& b) {
  if (a.is_number_integer() && b.is_number_integer()) return a.get<int64_t>() == b.get<int64_t>();
  if (a.is_number() && b.is_number()) {
    const double x = a.get<double>(), y = b.get<double>();
    return std::fabs(x - y) <= 1e-9 * std::max({1.0, std::fabs(x), std::fabs(y)});
  }
  return a == b;
}

// b - a; null unless both are numbers.
json Delta(const json& a, const json& b) {
  if (a.is_number_integer() && b.is_number_integer()) return b.get<int64_t>() - a.get<int64_t>();
  if (a.is_number() && b.is_number()) return b.get<double>() - a.get<double>();
  return nullptr;
}

// {"a", "b", "delta"}, or null when the values are the same.
json Change(const json& a, const json& b) {
  if (SameValue(a, b)) return nullptr;
  return {{"a", a}, {"b", b}, {"delta", Delta(a, b)}};
}

// The Change of each key that differs between two objects of numbers; a key
// missing (or null) on one side reads as `absent` there.
json DiffNumbers(const std::set<std::string>& keys, const json& a, const json& b, const json& absent) {
  auto value = [&absent](const json& j, const std::string& key) {
    const json& v = Field(j, key);
    return v.is_null() ? absent : v;
  };
  json out = json::object();
  for (const std::string& key : keys) {
    json change = Change(value(a, key), value(b, key));
    if (!change.is_null()) out[key] = std::move(change);
  }
  return out;
}

// ---------------------------------------------------------------------------
// Timelines.

struct TimelineEvent {
  std::string action;
  int64_t at_ms = 0;
  std::string status;
  bool operator==(const TimelineEvent&) const = default;
};

std::vector<TimelineEvent> TimelineOf(const json& c) {
  std::vector<TimelineEvent> events;
  for (const json& e : Items(c, "timeline")) {
    int64_t at = Int(e, "at_ms");
    if (at == 0) at = ParseRfc3339Ms(Str(e, "at")).value_or(0);  // outputs without at_ms
    events.push_back({Str(e, "action"), at, Str(e, "status")});
  }
  return events;
}

json EventJson(const std::vector<TimelineEvent>& events, size_t i) {
  if (i >= events.size()) return nullptr;
  const TimelineEvent& e = events[i];
  return {{"action", e.action}, {"at", TimeText(e.at_ms)}, {"at_ms", e.at_ms}, {"status", e.status}};
}

json CountActions(const std::vector<TimelineEvent>& events) {
  json counts = json::object();
  for (const TimelineEvent& e : events) counts[e.action] = counts.value(e.action, int64_t{0}) + 1;
  return counts;
}

// Null when the timelines are the same.
json CompareTimelines(const json& a, const json& b) {
  const std::vector<TimelineEvent> ea = TimelineOf(a), eb = TimelineOf(b);
  if (ea == eb) return nullptr;
  const auto first_difference = std::mismatch(ea.begin(), ea.end(), eb.begin(), eb.end()).first;
  const auto i = static_cast<size_t>(first_difference - ea.begin());
  const json counts_a = CountActions(ea), counts_b = CountActions(eb);
  return {{"position", i + 1},
          {"a", EventJson(ea, i)},
          {"b", EventJson(eb, i)},
          {"a_events", ea.size()},
          {"b_events", eb.size()},
          {"actions", DiffNumbers(KeysOf(counts_a, counts_b), counts_a, counts_b, 0)}};
}

// ---------------------------------------------------------------------------
// The case section of the result.

json CaseSummary(const json& c) {
  return {{"id", Str(c, "id")},
          {"category", Str(c, "category")},
          {"priority", Str(c, "priority")},
          {"department", Str(c, "department")},
          {"grid", Str(c, "grid")},
          {"status", Str(c, "status")},
          {"first_event", TimeOrNull(Int(c, "first_event"))},
          {"sla", SlaOutcomes(c)}};
}

json Unpaired(const std::vector<json>& cases, const std::vector<bool>& paired) {
  json out = json::array();
  for (size_t i = 0; i < cases.size(); ++i) {
    if (!paired[i]) out.push_back(CaseSummary(cases[i]));
  }
  return out;
}

std::vector<CaseView> ViewsOf(const std::vector<json>& cases) {
  std::vector<CaseView> views;
  views.reserve(cases.size());
  for (const json& c : cases) views.push_back(ViewOf(c));
  return views;
}

json DiffCases(const Run& a, const Run& b) {
  const std::vector<CaseView> va = ViewsOf(a.cases), vb = ViewsOf(b.cases);
  const Matching m = MatchCases(va, vb);
  json changed = json::array();
  size_t renumbered = 0;
  for (const Pair& p : m.pairs) {
    const CaseView &ca = va[p.a], &cb = vb[p.b];
    if (ca.id != cb.id) ++renumbered;
    json changes = CaseChanges(*ca.c, *cb.c);
    json timeline = CompareTimelines(*ca.c, *cb.c);
    if (changes.empty() && timeline.is_null()) continue;
    changed.push_back({{"a_id", ca.id},
                       {"b_id", cb.id},
                       {"match", MatchKindName(p.kind)},
                       {"changes", std::move(changes)},
                       {"timeline", std::move(timeline)}});
  }
  return {{"matched", m.pairs.size()},
          {"identical", m.pairs.size() - changed.size()},
          {"renumbered", renumbered},
          {"only_in_a", Unpaired(a.cases, m.a_paired)},
          {"only_in_b", Unpaired(b.cases, m.b_paired)},
          {"changed", std::move(changed)}};
}

// ---------------------------------------------------------------------------
// The KPI section. A group missing from one run has no row there: its
// counts read 0 and its rates, score and times null.

constexpr const char* kKpiGroups[] = {"department", "district", "category", "total"};

json DiffTimes(const json& a, const json& b) {
  static const std::set<std::string> kStats = {"mean_ms", "p90_ms"};
  json out = json::object();
  for (const std::string& name : KeysOf(a, b)) {
    json d = DiffNumbers(kStats, Field(a, name), Field(b, name), nullptr);
    if (!d.empty()) out[name] = std::move(d);
  }
  return out;
}

// Only the parts that differ; empty when the rows are the same.
json DiffKpiRow(const json& a, const json& b) {
  json out = json::object();
  auto keep = [&out](const char* key, json value) {
    if (!value.empty()) out[key] = std::move(value);  // null and {} are empty
  };
  const json &ca = Obj(a, "counts"), &cb = Obj(b, "counts");
  keep("counts", DiffNumbers(KeysOf(ca, cb), ca, cb, 0));
  const json &ra = Obj(a, "rates"), &rb = Obj(b, "rates");
  keep("rates", DiffNumbers(KeysOf(ra, rb), ra, rb, nullptr));
  keep("score", Change(Field(a, "score"), Field(b, "score")));
  keep("times", DiffTimes(Obj(a, "times"), Obj(b, "times")));
  return out;
}

std::map<std::string, const json*> RowsByGroup(const json& table) {
  std::map<std::string, const json*> rows;
  for (const json& row : Items(table, "rows")) rows.emplace(Str(row, "group"), &row);
  return rows;
}

json DiffKpiTable(const json& a, const json& b) {
  const auto rows_a = RowsByGroup(a), rows_b = RowsByGroup(b);
  auto row = [](const std::map<std::string, const json*>& rows, const std::string& group) -> const json& {
    auto it = rows.find(group);
    return it == rows.end() ? Null() : *it->second;
  };
  std::set<std::string> groups;
  for (const auto* rows : {&rows_a, &rows_b}) {
    for (const auto& entry : *rows) groups.insert(entry.first);
  }
  json out = json::array();
  for (const std::string& group : groups) {
    json d = DiffKpiRow(row(rows_a, group), row(rows_b, group));
    if (d.empty()) continue;
    d["group"] = group;
    out.push_back(std::move(d));
  }
  return out;
}

json DiffKpi(const json& a, const json& b) {
  json out = json::object();
  for (const char* group : kKpiGroups) {
    out[group] = DiffKpiTable(Field(Obj(a, "by"), group), Field(Obj(b, "by"), group));
  }
  return out;
}

// ---------------------------------------------------------------------------
// The whole result.

json RunInfo(const Run& run) {
  const json& digest = Field(run.summary, "digest");
  return {{"dir", run.dir}, {"digest", digest.is_string() ? digest : json(nullptr)}, {"cases", run.cases.size()}};
}

bool AllEmpty(const json& sections) {
  return std::all_of(sections.begin(), sections.end(), [](const json& s) { return s.empty(); });
}

json Diff(const Run& a, const Run& b) {
  json info_a = RunInfo(a), info_b = RunInfo(b);
  json digest_equal = nullptr;
  if (info_a["digest"].is_string() && info_b["digest"].is_string()) digest_equal = info_a["digest"] == info_b["digest"];
  json cases = DiffCases(a, b);
  json kpi = DiffKpi(a.kpi, b.kpi);
  const bool match =
      cases["only_in_a"].empty() && cases["only_in_b"].empty() && cases["changed"].empty() && AllEmpty(kpi);
  return {{"match", match},
          {"a", std::move(info_a)},
          {"b", std::move(info_b)},
          {"digest_equal", std::move(digest_equal)},
          {"cases", std::move(cases)},
          {"kpi", std::move(kpi)}};
}

// ---------------------------------------------------------------------------
// Text report.

// Terminal columns, approximated by code points: the report itself uses
// multi-byte ↔ → Δ …, which would otherwise throw the table out of line.
size_t Width(std::string_view s) {
  return static_cast<size_t>(
      std::count_if(s.begin(), s.end(), [](char ch) { return (static_cast<unsigned char>(ch) & 0xC0) != 0x80; }));
}

std::string Pad(const std::string& s, size_t width, bool right_align) {
  const std::string fill(width > Width(s) ? width - Width(s) : 0, ' ');
  return right_align ? fill + s : s + fill;
}

// Columns padded to their widest cell: the first `text_columns` left-aligned,
// the rest (numbers) right-aligned.
std::string RenderTable(const std::vector<std::vector<std::string>>& rows, size_t text_columns) {
  std::vector<size_t> widths;
  for (const auto& row : rows) {
    widths.resize(std::max(widths.size(), row.size()));
    for (size_t c = 0; c < row.size(); ++c) widths[c] = std::max(widths[c], Width(row[c]));
  }
  std::string out;
  for (const auto& row : rows) {
    std::string line;
    for (size_t c = 0; c < row.size(); ++c) line += "  " + Pad(row[c], widths[c], c >= text_columns);
    line.erase(line.find_last_not_of(' ') + 1);
    out += line + "\n";
  }
  return out;
}

// A titled list of at most max_listed lines, then "… and N more".
void AppendList(std::string* out, const std::string& title, const json& items, size_t max_listed,
                const std::function<std::string(const json&)>& line_of) {
  if (!items.is_array() || items.empty()) return;
  *out += "\n" + title + "\n";
  for (size_t i = 0; i < items.size() && i < max_listed; ++i) *out += "  " + line_of(items[i]) + "\n";
  if (items.size() > max_listed) *out += fmt::format("  … and {} more\n", items.size() - max_listed);
}

std::string Join(const std::vector<std::string>& parts, const std::string& separator) {
  std::string s;
  for (size_t i = 0; i < parts.size(); ++i) s += (i == 0 ? "" : separator) + parts[i];
  return s;
}

// A field value as shown: "-" for nothing, lists comma-separated.
std::string ValueText(const json& v) {
  if (v.is_string()) return v.get<std::string>().empty() ? "-" : v.get<std::string>();
  if (v.is_array()) {
    std::vector<std::string> items;
    for (const json& item : v) items.push_back(ValueText(item));
    return items.empty() ? "-" : Join(items, ", ");
  }
  return v.is_null() ? "-" : v.dump();
}

std::string CaseLine(const json& s) {
  return fmt::format("{}  {} ({}) {}  grid {}  {}  {}", Str(s, "id"), ValueText(Field(s, "category")),
                     ValueText(Field(s, "priority")), ValueText(Field(s, "department")), ValueText(Field(s, "grid")),
                     ValueText(Field(s, "first_event")), ValueText(Field(s, "status")));
}

std::string FieldLabel(const std::string& field) {
  if (field.rfind("sla.", 0) == 0) return field.substr(4) + " SLA";
  std::string label = field;
  std::replace(label.begin(), label.end(), '_', ' ');
  return label;
}

// "#5 (city.case.sla_warning vs city.case.acknowledged)", then the event
// types whose counts differ.
std::string TimelineText(const json& t) {
  const json &a = Field(t, "a"), &b = Field(t, "b");
  std::string what;
  if (a.is_null() || b.is_null()) {
    what = fmt::format("{} vs {}", a.is_null() ? "end" : Str(a, "action"), b.is_null() ? "end" : Str(b, "action"));
  } else if (Str(a, "action") != Str(b, "action")) {
    what = Str(a, "action") + " vs " + Str(b, "action");
  } else if (Int(a, "at_ms") != Int(b, "at_ms")) {
    what = fmt::format("{} at {} vs {}", Str(a, "action"), Str(a, "at"), Str(b, "at"));
  } else {
    what = fmt::format("{} status {} vs {}", Str(a, "action"), Str(a, "status"), Str(b, "status"));
  }
  std::string s = fmt::format("timeline diverges at #{} ({})", Int(t, "position"), what);
  for (const auto& item : Obj(t, "actions").items()) {
    s += fmt::format(", {} {} → {}", item.key(), Int(item.value(), "a"), Int(item.value(), "b"));
  }
  return s;
}

std::string ChangedLine(const json& c) {
  const std::string a_id = Str(c, "a_id"), b_id = Str(c, "b_id"), kind = Str(c, "match");
  std::string s = a_id == b_id ? a_id : a_id + " ↔ " + b_id;
  if (kind != "id") s += " (by " + kind + ")";
  std::vector<std::string> parts;
  for (const json& change : Items(c, "changes")) {
    parts.push_back(fmt::format("{} {} → {}", FieldLabel(Str(change, "field")), ValueText(Field(change, "a")),
                                ValueText(Field(change, "b"))));
  }
  if (const json& timeline = Field(c, "timeline"); timeline.is_object()) parts.push_back(TimelineText(timeline));
  return s + ": " + Join(parts, "; ");
}

enum class Unit { kCount, kRate, kScore, kDuration };

std::string Duration(double ms) {
  if (ms < 0) return "-" + Duration(-ms);
  const auto total = static_cast<int64_t>(std::llround(ms));
  if (total < 1000) return fmt::format("{}ms", total);
  if (total < 60'000) return fmt::format("{:.1f}s", static_cast<double>(total) / 1000);
  const int64_t s = total / 1000;
  if (s < 3600) return fmt::format("{}m{:02}s", s / 60, s % 60);
  if (s < 86400) return fmt::format("{}h{:02}m", s / 3600, s % 3600 / 60);
  return fmt::format("{}d{:02}h", s / 86400, s % 86400 / 3600);
}

// The number without unit suffix or sign decoration: rates in percent.
std::string Number(double x, Unit unit) {
  switch (unit) {
    case Unit::kCount: return fmt::format("{}", std::llround(x));
    case Unit::kRate: return fmt::format("{:.1f}", x * 100);
    case Unit::kScore: return fmt::format("{:.1f}", x);
    case Unit::kDuration: return Duration(x);
  }
  return "?";
}

std::string ValueCell(const json& v, Unit unit) {
  if (!v.is_number()) return "-";
  return Number(v.get<double>(), unit) + (unit == Unit::kRate ? "%" : "");
}

std::string DeltaCell(const json& d, Unit unit) {
  if (!d.is_number()) return "-";
  const double x = d.get<double>();
  const char* sign = x > 0 ? "+" : x < 0 ? "-" : "";
  return sign + Number(std::fabs(x), unit) + (unit == Unit::kRate ? " pp" : "");
}

void AddKpiRows(const json& group_diff, std::vector<std::vector<std::string>>* rows) {
  const std::string group = Str(group_diff, "group");
  auto add = [&](const std::string& metric, const json& change, Unit unit) {
    rows->push_back({group, metric, ValueCell(Field(change, "a"), unit), ValueCell(Field(change, "b"), unit),
                     DeltaCell(Field(change, "delta"), unit)});
  };
  for (const auto& item : Obj(group_diff, "counts").items()) add(item.key(), item.value(), Unit::kCount);
  for (const auto& item : Obj(group_diff, "rates").items()) add(item.key(), item.value(), Unit::kRate);
  if (const json& score = Field(group_diff, "score"); score.is_object()) add("score", score, Unit::kScore);
  for (const auto& time : Obj(group_diff, "times").items()) {
    for (const auto& stat : time.value().items()) {
      add(time.key() + (stat.key() == "mean_ms" ? " mean" : " p90"), stat.value(), Unit::kDuration);
    }
  }
}

// "KPI deltas by department:" and a table of (group, metric, A, B, Δ).
void AppendKpiTable(std::string* out, const std::string& by, const json& groups, size_t max_listed) {
  std::vector<std::vector<std::string>> rows;
  for (const json& g : groups) AddKpiRows(g, &rows);
  if (rows.empty()) return;
  const size_t shown = std::min(rows.size(), max_listed);
  std::vector<std::vector<std::string>> table = {{by, "metric", "A", "B", "Δ"}};
  table.insert(table.end(), rows.begin(), rows.begin() + static_cast<std::ptrdiff_t>(shown));
  *out += "\n" + (by == "total" ? std::string("KPI deltas, total:") : "KPI deltas by " + by + ":") + "\n";
  *out += RenderTable(table, 2);
  if (rows.size() > shown) *out += fmt::format("  … and {} more\n", rows.size() - shown);
}

std::string DigestLine(const json& diff) {
  const json& equal = Field(diff, "digest_equal");
  const std::string a = Str(Obj(diff, "a"), "digest"), b = Str(Obj(diff, "b"), "digest");
  if (equal == true) return "Digest: equal (" + a + ")\n";
  if (equal == false) return "Digest: differs (A " + a + ", B " + b + ")\n";
  return "Digest: not compared (no summary.json digest in " + std::string(a.empty() ? "A" : "B") + ")\n";
}

std::string CasesLine(const json& a, const json& b, const json& cases) {
  const int64_t renumbered = Int(cases, "renumbered");
  return fmt::format("Cases: A {}, B {}, matched {} ({} identical{}), only in A {}, only in B {}, changed {}\n",
                     Int(a, "cases"), Int(b, "cases"), Int(cases, "matched"), Int(cases, "identical"),
                     renumbered > 0 ? fmt::format(", {} renumbered", renumbered) : "",
                     Items(cases, "only_in_a").size(), Items(cases, "only_in_b").size(),
                     Items(cases, "changed").size());
}

}  // namespace

Result<nlohmann::json> DiffRuns(const std::string& dir_a, const std::string& dir_b) {
  auto a = LoadRun(dir_a);
  if (!a.ok()) return a.status();
  auto b = LoadRun(dir_b);
  if (!b.ok()) return b.status();
  return Diff(*a, *b);
}

std::string FormatDiffText(const nlohmann::json& diff, const DiffOptions& options) {
  const json &a = Obj(diff, "a"), &b = Obj(diff, "b"), &cases = Obj(diff, "cases"), &kpi = Obj(diff, "kpi");
  std::string out = fmt::format("cityloop diff: A {}, B {}: {}\n", Str(a, "dir"), Str(b, "dir"),
                                Field(diff, "match") == true ? "runs match" : "runs differ");
  out += DigestLine(diff);
  out += CasesLine(a, b, cases);
  AppendList(&out, "Only in A:", Items(cases, "only_in_a"), options.max_listed, CaseLine);
  AppendList(&out, "Only in B:", Items(cases, "only_in_b"), options.max_listed, CaseLine);
  AppendList(&out, "Changed:", Items(cases, "changed"), options.max_listed, ChangedLine);
  bool kpi_differs = false;
  for (const char* by : kKpiGroups) {
    AppendKpiTable(&out, by, Items(kpi, by), options.max_listed);
    kpi_differs = kpi_differs || !Items(kpi, by).empty();
  }
  if (!kpi_differs) out += "\nKPI: no differences\n";
  return out;
}

}  // namespace cityloop::replay
