// CaseEngine: turns signals into cases (one case per real-world problem) and
// carries every case through the workflow of DOMAIN.md to closure.
//
// - Signals: a signal joins the open case of its category in its grid cell
//   (or a neighbouring cell within merge.radius_m) seen within the merge
//   window; otherwise it opens a case, which is registered (or waits in
//   `detected` for 核实), routed (cell -> district, category -> department)
//   and dispatched with the nearest eligible unit and SLA clocks.
// - Commands (cityloop.commands, in log order): the transition table of
//   docs/ARCHITECTURE.md "Case workflow"; an action the case's status or the
//   actor's role does not allow is rejected with a reason and changes nothing.
// - Time: AdvanceTo(watermark) fires SLA lights, escalation levels, unit
//   lateness warnings and sensor-backed verification, in event time, so a
//   replay gives the same results.
// - Units: positions and status from city.units (UnitTracker).
// - KPIs: every change replaces the case's contribution in the KpiBook.
//
// Every change yields audit entries (actor, role, time, reason, rule, and the
// case as it became: see Snapshot) and CloudEvents records (ids "<case_id>:<seq>",
// deterministic) for the outbox. Deterministic: the same inputs in the same
// order give the same cases, ids and events. Owned and called by one engine
// thread.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/city.h"
#include "core/model.h"
#include "core/shard.h"
#include "core/json_writer.h"
#include "dispatch/event_data.h"
#include "dispatch/kpi.h"
#include "dispatch/sla.h"
#include "dispatch/unit_tracker.h"

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
  int64_t commands_applied = 0;
  int64_t sla_warnings = 0;
  int64_t sla_breaches = 0;
  int64_t escalations = 0;
  int64_t ping_pongs = 0;
  int64_t auto_verified = 0;
  int64_t relapses = 0;
  std::map<std::string, int64_t> rejected;  // command rejections by reason
};

class CaseEngine {
 public:
  explicit CaseEngine(std::shared_ptr<const CityModel> city);

  // Puts a stored case back (on start). Cases must be restored before input arrives.
  void Restore(Case c);
  // Cases no longer open leave memory (EvictSettled); a command or a relapse
  // that needs one again reads it back through the loader (from the store).
  // Without a loader nothing is evicted.
  using CaseLoader = std::function<std::optional<Case>(const std::string& id)>;
  void SetLoader(CaseLoader loader) { loader_ = std::move(loader); }
  // Drops from memory the cases no longer open whose newest change is more
  // than keep_ms before the watermark. Call only once their state is stored
  // (after the batch is written); their KPI share stays in the book, their
  // sensor stays known for a relapse. Returns how many left.
  size_t EvictSettled(int64_t keep_ms);
  // Next case number (persisted in meta "case_seq").
  void RestoreCaseSequence(uint64_t next) { next_case_number_ = next; }
  uint64_t next_case_number() const { return next_case_number_; }
  // This engine is one shard of several (scale.shards): its case numbers are
  // ShardSequence(n, shard), so that an id names its shard. Set before input.
  void SetShard(ShardSpec shard) { shard_ = shard; }

  // Joins s to a case or opens one; see the file comment. When s touches
  // several open cases, or absorbs the cases of a correlation's members,
  // they merge into the oldest (city.case.merged). A sensor rule's relapse
  // soon after a sensor-verified closure reopens that case.
  void OnSignal(const Signal& s, Effects* fx);
  // Applies one operator action. Returns "" when applied, else the reason
  // it was rejected (a city.command.rejected event says so; nothing changed).
  std::string OnCommand(const Command& cmd, Effects* fx);
  // A sensor rule's alarm ended: starts the quiet time of sensor-backed verification.
  void OnRecovery(const Recovery& r, Effects* fx);
  // One city.units report. Returns "" when applied, else why not.
  std::string OnUnitUpdate(const UnitUpdate& u, Effects* fx);
  // Fires everything due at or before watermark_ms, oldest first.
  void AdvanceTo(int64_t watermark_ms, Effects* fx);
  // Swaps in a reloaded model (same city; new rules, merge and SLA settings
  // apply to clocks started from now on).
  void SetCity(std::shared_ptr<const CityModel> city);

  const Case* Find(std::string_view id) const;
  size_t case_count() const { return cases_.size(); }
  size_t open_count() const { return open_count_; }
  const CaseEngineStats& stats() const { return stats_; }
  const KpiBook& kpi() const { return kpi_; }
  UnitTracker& units() { return units_; }
  const UnitTracker& units() const { return units_; }
  const SlaPolicy& sla() const { return *sla_; }
  int64_t time_ms() const { return now_ms_; }  // the newest watermark seen
  // Approximate heap bytes of the open cases (for the memory benchmark and /metrics).
  size_t OpenCaseBytes() const;
  // Open cases by status and by their worst running SLA light, and the
  // timers waiting to fire (for /metrics). O(cases).
  struct Census {
    std::map<CaseStatus, int64_t> by_status;  // open cases only
    int64_t green = 0, yellow = 0, red = 0;   // open cases with a running clock, by its worst light
    int64_t timers = 0;
  };
  Census TakeCensus() const;

 private:
  struct Actor {
    std::string name = "system";
    Role role = Role::kSystem;
    std::string reason;      // the operator's note, or what the engine decided
    std::string rule;        // the rule or policy behind an automatic decision
    std::string command_id;
  };

  // Intake (case_engine.cc).
  Case* OpenCase(const Signal& s, Effects* fx);
  std::vector<Case*> Candidates(const Signal& s);
  void Merge(Case& into, Case& from, const Actor& actor, int64_t at_ms, Effects* fx);
  void AddSignal(Case& c, const Signal& s, Effects* fx);
  Case* OpenCaseHolding(const std::string& signal_id);
  Case* RelapsedCase(const Signal& s);
  // The case with this id, read back through the loader if it was evicted; nullptr if none.
  Case* Resident(const std::string& id);
  // Restore's indexing; a case read back after eviction (readmitted) is in
  // the KPI book and by_sensor_ already.
  Case& Admit(Case c, bool readmitted);

  // Workflow (case_workflow.cc).
  void Register(Case& c, const Actor& actor, int64_t at_ms, Effects* fx);
  // Dispatches a new task for dept (lead or assisting) with its order.
  Task& Dispatch(Case& c, const std::string& dept, bool lead, const Actor& actor, int64_t at_ms, Effects* fx);
  void CancelTask(Case& c, Task& t, const std::string& reason, const Actor& actor, int64_t at_ms, Effects* fx);
  // The case status that follows from its tasks (dispatch phase) after a task moved.
  void SyncStatus(Case& c, const Actor& actor, int64_t at_ms, Effects* fx);
  void Close(Case& c, bool verified, const Actor& actor, int64_t at_ms, Effects* fx);
  void Reopen(Case& c, const Actor& actor, int64_t at_ms, Effects* fx);
  void Escalate(Case& c, const std::string& level, const std::string& target, const std::string& why,
                std::optional<SlaStage> stage, const Actor& actor, int64_t at_ms, Effects* fx);
  std::string Apply(Case& c, const Command& cmd, int64_t at_ms, Effects* fx);
  void Reject(const Command& cmd, const Case* c, const std::string& reason, Effects* fx);

  // Time (case_timers.cc). The next thing due on a case: a light change of
  // one of its clocks, an escalation level, the unit's lateness, or the end
  // of a sensor-backed verification.
  struct DueItem {
    enum Kind { kLight, kEscalation, kLateness, kAutoVerify };
    int64_t at = kNever;
    Kind kind = kLight;
    int task = -1;  // index into tasks; -1: a case-level clock
    SlaStage stage = SlaStage::kHandle;
    size_t level = 0;  // kEscalation: index into escalation.levels
  };
  DueItem NextItem(const Case& c) const;
  int64_t NextDue(const Case& c) const { return NextItem(c).at; }
  void FireDue(Case& c, Effects* fx);
  void Fire(Case& c, const DueItem& item, Effects* fx);
  // The instant the lead task's unit must leave to arrive by its deadline (kNever: none).
  int64_t LatestDeparture(const Case& c) const;
  bool SensorBacked(const Case& c) const;
  int64_t AutoVerifyAt(const Case& c) const;

  // Bookkeeping: Touch() before the first change of a case in a call,
  // Settle() at the end of the call (KPIs, timers, changed list, indexes).
  Case& Touch(Case& c);
  void Settle(Effects* fx);
  void Retime(const Case& c);  // puts c's next due instant in timers_
  void Index(const Case& c);
  void Unindex(const Case& c);

  // Whether an audit entry carries the case as the change left it. Only the
  // last entry of a call at one instant needs to (CaseAsOf takes the newest
  // entry at or before a time): kLater where the caller always emits another
  // event for the case at the same instant next (opened -> dispatched -> order).
  enum class Snapshot { kHere, kLater };
  void Emit(Case& c, std::string_view type, int64_t time_ms, EventData data, const Actor& actor, Effects* fx,
            Snapshot snapshot = Snapshot::kHere);
  EventData Summary(const Case& c) const;
  std::string MergeKey(const std::string& category, int cell) const;

  std::shared_ptr<const CityModel> city_;
  std::unique_ptr<SlaPolicy> sla_;
  UnitTracker units_;
  KpiBook kpi_;
  std::map<std::string, Case> cases_;                        // by id: the open ones, and recently closed
  CaseLoader loader_;
  std::unordered_map<std::string, std::vector<std::string>> open_by_key_;  // category/cell -> open case ids
  std::unordered_map<std::string, std::string> by_sensor_;   // "rule/device" of a sensor-opened case -> newest case id
  std::set<std::pair<int64_t, std::string>> timers_;         // (due, case id)
  std::unordered_map<std::string, int64_t> due_;             // case id -> its entry in timers_
  std::map<std::string, KpiContribution> touched_;           // this call's changed cases -> contribution before
  size_t open_count_ = 0;
  int64_t now_ms_ = 0;
  uint64_t next_case_number_ = 1;
  ShardSpec shard_;
  CaseEngineStats stats_;
  std::string event_source_;  // EventSource(*city_)
  JsonWriter writer_;         // Emit's, kept for its buffers
};

// CloudEvents "source" attribute of every event this engine emits.
std::string EventSource(const CityModel& city);
// A CloudEvents 1.0 record (JSON, application/json data) into w.
void WriteCloudEvent(JsonWriter& w, std::string_view id, std::string_view source, std::string_view type,
                     std::string_view time, std::string_view subject, std::string_view data_json);

}  // namespace cityloop::dispatch
