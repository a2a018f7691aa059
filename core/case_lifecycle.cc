#include "core/case_lifecycle.h"

#include "core/name_table.h"

namespace cityloop {

namespace {
constexpr std::array<std::pair<CaseAction, const char*>, kCaseActionCount> kActions{{
    {CaseAction::kAcknowledge, "acknowledge"}, {CaseAction::kEnroute, "enroute"},
    {CaseAction::kArrive, "arrive"},           {CaseAction::kHandled, "handled"},
    {CaseAction::kVerifyPass, "verify_pass"},  {CaseAction::kVerifyFail, "verify_fail"},
    {CaseAction::kClose, "close"},             {CaseAction::kReopen, "reopen"},
    {CaseAction::kReturn, "return"},           {CaseAction::kReassign, "reassign"},
    {CaseAction::kAssist, "assist"},           {CaseAction::kExtend, "extend"},
    {CaseAction::kSuspend, "suspend"},         {CaseAction::kResume, "resume"},
    {CaseAction::kDefer, "defer"},             {CaseAction::kInvalidate, "invalidate"},
    {CaseAction::kMerge, "merge"},
}};
constexpr std::array<std::pair<Role, const char*>, 5> kRoles{{
    {Role::kViewer, "viewer"}, {Role::kOperator, "operator"}, {Role::kSupervisor, "supervisor"},
    {Role::kAdmin, "admin"},   {Role::kSystem, "system"},
}};
constexpr std::array<std::pair<TaskStatus, const char*>, 7> kTaskStatuses{{
    {TaskStatus::kDispatched, "dispatched"}, {TaskStatus::kAcknowledged, "acknowledged"},
    {TaskStatus::kEnroute, "enroute"},       {TaskStatus::kOnScene, "onscene"},
    {TaskStatus::kHandled, "handled"},       {TaskStatus::kReturned, "returned"},
    {TaskStatus::kCancelled, "cancelled"},
}};
constexpr std::array<std::pair<SlaStage, const char*>, kSlaStageCount> kStages{{
    {SlaStage::kAcknowledge, "acknowledge"}, {SlaStage::kArrive, "arrive"}, {SlaStage::kHandle, "handle"},
    {SlaStage::kVerify, "verify"},           {SlaStage::kClose, "close"},
}};
constexpr std::array<std::pair<SlaLight, const char*>, 3> kLights{{
    {SlaLight::kGreen, "green"}, {SlaLight::kYellow, "yellow"}, {SlaLight::kRed, "red"},
}};
}  // namespace

const char* CaseActionName(CaseAction a) { return NameIn(kActions, a); }
std::optional<CaseAction> ParseCaseAction(std::string_view s) { return ParseIn(kActions, s); }
const char* RoleName(Role r) { return NameIn(kRoles, r); }
std::optional<Role> ParseRole(std::string_view s) { return ParseIn(kRoles, s); }
const char* TaskStatusName(TaskStatus s) { return NameIn(kTaskStatuses, s); }
std::optional<TaskStatus> ParseTaskStatus(std::string_view s) { return ParseIn(kTaskStatuses, s); }
const char* SlaStageName(SlaStage s) { return NameIn(kStages, s); }
std::optional<SlaStage> ParseSlaStage(std::string_view s) { return ParseIn(kStages, s); }
const char* SlaLightName(SlaLight l) { return NameIn(kLights, l); }

}  // namespace cityloop
