// The case workflow's vocabulary (DOMAIN.md "The case workflow"): operator
// actions, roles, task states, SLA stages and lights, and the transition
// table that says which action is allowed in which case status, by whom.
// Pure data and functions; dispatch::CaseEngine applies them.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace cityloop {

// cityloop.commands `action`.
enum class CaseAction : uint8_t {
  kAcknowledge,  // 签收: the department signs for its task
  kEnroute,      // the unit is on its way
  kArrive,       // the unit is on scene
  kHandled,      // 处理反馈: the department reports its task done
  kVerifyPass,   // 核实 (detected -> registered) or 核查 passed (-> closed)
  kVerifyFail,   // 核查 failed: 返工, the lead task is handled again
  kClose,        // close without a check (supervisor)
  kReopen,       // 重办 a closed case
  kReturn,       // 退单: the department returns a wrong dispatch
  kReassign,     // 改派 to another department (`department`)
  kAssist,       // adds an assisting department's task (`department`)
  kExtend,       // 延期 the handle deadline (`duration`)
  kSuspend,      // 挂账: parked, clocks paused
  kResume,       // ends a suspension or deferral
  kDefer,        // 缓办: parked and left out of KPI denominators
  kInvalidate,   // 作废
  kMerge,        // into another open case (`into`)
};
inline constexpr int kCaseActionCount = 17;
const char* CaseActionName(CaseAction a);
std::optional<CaseAction> ParseCaseAction(std::string_view s);

// Who may act (api tokens map to one). Declared in rank order.
enum class Role : uint8_t { kViewer, kOperator, kSupervisor, kAdmin, kSystem };
inline bool RoleAtLeast(Role r, Role min) { return static_cast<int>(r) >= static_cast<int>(min); }
const char* RoleName(Role r);
std::optional<Role> ParseRole(std::string_view s);

// One department's assignment on a case.
enum class TaskStatus : uint8_t {
  kDispatched, kAcknowledged, kEnroute, kOnScene, kHandled, kReturned, kCancelled,
};
const char* TaskStatusName(TaskStatus s);
std::optional<TaskStatus> ParseTaskStatus(std::string_view s);
inline bool TaskIsActive(TaskStatus s) { return s != TaskStatus::kReturned && s != TaskStatus::kCancelled; }

// The stages an SLA limit applies to. Acknowledge, arrive and handle run per
// task from its dispatch; verify from the case's handled report; close from
// the first dispatch.
enum class SlaStage : uint8_t { kAcknowledge, kArrive, kHandle, kVerify, kClose };
inline constexpr int kSlaStageCount = 5;
const char* SlaStageName(SlaStage s);
std::optional<SlaStage> ParseSlaStage(std::string_view s);

// Early-warning light of a running stage: green below sla.warning_ratio of
// its limit, yellow up to sla.breach_ratio, red past it.
enum class SlaLight : uint8_t { kGreen, kYellow, kRed };
const char* SlaLightName(SlaLight l);

}  // namespace cityloop
