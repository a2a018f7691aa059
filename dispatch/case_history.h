// A case's history from its audit trail: the last audit entry a change
// writes at an instant carries the case as that change left it (without its
// signals; earlier entries of the same change and instant leave it out, see
// CaseEngine::Snapshot), so the case as it was at any time is the newest
// entry at or before that time that carries one. Pure functions over the
// stored entries; the caller reads them (storage::Store::ForEachAudit).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/model.h"
#include "core/status.h"

namespace cityloop::dispatch {

// entries: the audit JSON of one case, in seq order. nullopt when the case
// did not exist yet at at_ms. Unparseable entries are DataLoss.
Result<std::optional<Case>> CaseAsOf(const std::vector<std::string>& entries, int64_t at_ms);

// The timeline an operator reads: one item per entry (seq, time, action,
// actor, role, status, reason, rule, command) without the case snapshots.
Result<nlohmann::json> Timeline(const std::vector<std::string>& entries);

}  // namespace cityloop::dispatch
