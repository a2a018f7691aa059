// `cityloop diff DIR_A DIR_B`: compares two replay outputs, typically the
// same log replayed under two rule configs (what-if analysis).
//
// A run directory holds cases.jsonl (one case per line), kpi.json and,
// optionally, summary.json. Every field of a case or a KPI row may be missing
// (older outputs): a missing field reads as empty, 0 or null.
//
// Matching cases. Case ids are a per-day sequence, so one extra case early in
// a run renumbers every later one: matching by id alone would pair unrelated
// cases. Cases are paired in passes, each over the cases still unpaired:
//   "id"          same id and same origin (the first signal's device_id, or
//                 its signal id when device-less, and the same first_event);
//   "signal"      the cases share a signal id (most shared signals first);
//   "device_time" the cases share a device_id (device-less signals: the same
//                 grid cell) and their [first_event, max(last_signal,
//                 first_event)] intervals overlap or lie within 10 minutes
//                 (largest overlap first).
// Ties go to the smaller A id, then the smaller B id, so the result is
// deterministic. Unpaired cases are "only in A" / "only in B".
//
// For a pair, these differ or not: category, priority, status, department,
// task_departments and task_units (routing, in task order),
// recommended_unit, the SLA outcome of each stage (sla.acknowledge,
// sla.arrive, sla.handle from the lead task; sla.verify, sla.close from the
// case), and the timeline as the sequence of (action, at_ms, status). A pair
// whose only difference is its id (renumbered) is identical.
//
// SLA outcome of a clock: "none" (null, never started), "breached" (light
// red), "met" (stopped), "open" (running); a yellow light adds " (warned)":
// "met (warned)", "open (warned)".
//
// The result of DiffRuns:
// {
//   "match": bool,          // no case only in one run, none changed, no KPI delta
//   "a": {"dir", "digest" (string|null), "cases": N}, "b": {...},
//   "digest_equal": bool|null,   // null when a summary.json (or digest) is missing
//   "cases": {
//     "matched": N, "identical": N, "renumbered": N (matched with different ids),
//     "only_in_a": [summary], "only_in_b": [summary],   // ascending by id
//     "changed": [{                                     // ascending by a_id
//       "a_id", "b_id", "match": "id"|"signal"|"device_time",
//       "changes": [{"field", "a", "b"}],
//       "timeline": null | {
//         "position": N,                 // 1-based index of the first differing event
//         "a": event|null, "b": event|null,   // null: that timeline ended
//         "a_events": N, "b_events": N,
//         "actions": {action: {"a", "b", "delta"}}   // per-type counts that differ
//       }}]
//   },
//   "kpi": {"department"|"district"|"category"|"total": [{   // groups that differ
//     "group",
//     "counts": {name: {"a", "b", "delta"}},    // a missing row or count reads 0
//     "rates":  {name: {"a", "b", "delta"}},    // null-safe: delta null unless both are numbers
//     "score":  {"a", "b", "delta"},            // only when it differs
//     "times":  {"acknowledge"|...: {"mean_ms"|"p90_ms": {"a", "b", "delta"}}}
//   }]}
// }
// summary = {"id", "category", "priority", "department", "grid", "status",
//            "first_event" (RFC 3339, null when 0), "sla": {stage: outcome}};
// event   = {"action", "at" (RFC 3339), "at_ms", "status"}.
// Only differing fields appear in "changes", "counts", "rates" and "times".
#pragma once

#include <cstddef>
#include <string>

#include <nlohmann/json.hpp>

#include "core/status.h"

namespace cityloop::replay {

struct DiffOptions {
  size_t max_listed = 50;  // entries shown per section of the text report
};

// Reads both run directories and compares them. A missing directory or
// cases.jsonl / kpi.json is NotFound; an unreadable record is DataLoss naming
// the file and line.
Result<nlohmann::json> DiffRuns(const std::string& dir_a, const std::string& dir_b);

// The operator's report of a DiffRuns result: header, case counts, the cases
// only in one run, the changed pairs, and KPI delta tables.
std::string FormatDiffText(const nlohmann::json& diff, const DiffOptions& options = {});

}  // namespace cityloop::replay
