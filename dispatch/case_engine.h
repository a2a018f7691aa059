// CaseEngine: turns signals into cases (one case per real-world problem) and
// routes them. A signal joins the open case of its category in its grid cell
// when that case saw a signal within the merge window; otherwise it opens a
// case, which is registered, routed (cell -> district, category -> department
// via the responsibility catalogue) and dispatched with the nearest eligible
// unit and SLA deadlines. Every change yields audit entries and CloudEvents
// records (ids "<case_id>:<seq>", deterministic) for the outbox.
// Deterministic: the same signals in the same order give the same cases, ids
// and events. Owned and called by one engine thread.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/city.h"
#include "core/model.h"

namespace cityloop::dispatch {

// One record for an output topic.
struct OutputRecord {
  std::string topic;
  std::string key;
  std::string value;  // CloudEvents 1.0 JSON
};

struct AuditEntry {
  std::string case_id;
  uint32_t seq = 0;
  std::string json;
};

// What one call changed, for the caller to persist in its WriteBatch.
struct Effects {
  std::vector<std::string> changed_cases;  // ids; read them with Find()
  std::vector<std::string> opened_cases;   // ids of cases this call opened
  std::vector<AuditEntry> audit;
  std::vector<OutputRecord> records;
  void Clear();
};

struct CaseEngineStats {
  int64_t opened = 0;
  int64_t merged_signals = 0;
  int64_t duplicate_signals = 0;
  int64_t merged_cases = 0;
  int64_t orphan_followups = 0;  // follow-ups whose case is closed or unknown
};

class CaseEngine {
 public:
  explicit CaseEngine(std::shared_ptr<const CityModel> city);

  // Puts a stored case back (on start). Cases must be restored before signals arrive.
  void Restore(Case c);
  // Next case number (persisted in meta "case_seq").
  void RestoreCaseSequence(uint64_t next) { next_case_number_ = next; }
  uint64_t next_case_number() const { return next_case_number_; }

  // Joins s to the open case of its category in its cell, or in a
  // neighbouring cell within merge.radius_m, seen within merge.window; else
  // opens one. When s touches several such cases, or absorbs the cases of a
  // correlation's members, they merge into the oldest (city.case.merged).
  void OnSignal(const Signal& s, Effects* fx);
  // Swaps in a reloaded model (same city; new rules and merge settings).
  void SetCity(std::shared_ptr<const CityModel> city) { city_ = std::move(city); }

  const Case* Find(std::string_view id) const;
  size_t case_count() const { return cases_.size(); }
  size_t open_count() const;
  const CaseEngineStats& stats() const { return stats_; }

 private:
  Case* OpenCase(const Signal& s, Effects* fx);
  void Emit(Case& c, const std::string& type, int64_t time_ms, nlohmann::json data, Effects* fx);
  void Audit(Case& c, uint32_t seq, const std::string& action, int64_t at_ms, nlohmann::json detail, Effects* fx);
  nlohmann::json Summary(const Case& c) const;
  std::string MergeKey(const std::string& category, int cell) const;
  // Open cases s may join, oldest first.
  std::vector<Case*> Candidates(const Signal& s);
  // Moves from's signals into into and closes from as merged.
  void Merge(Case& into, Case& from, const std::string& reason, int64_t at_ms, Effects* fx);
  void AddSignal(Case& c, const Signal& s, Effects* fx);
  Case* OpenCaseHolding(const std::string& signal_id);

  std::shared_ptr<const CityModel> city_;
  std::map<std::string, Case> cases_;                        // by id
  std::unordered_map<std::string, std::vector<std::string>> open_by_key_;  // category/cell -> open case ids
  uint64_t next_case_number_ = 1;
  CaseEngineStats stats_;
};

// CloudEvents "source" attribute of every event this engine emits.
std::string EventSource(const CityModel& city);

}  // namespace cityloop::dispatch
