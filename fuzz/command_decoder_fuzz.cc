// cityloop.commands values through ingest::CommandDecoder (fuzz/decoder_fuzz.h).
#include "fuzz/decoder_fuzz.h"
#include "ingest/command_decoder.h"

namespace {

using namespace cityloop;

std::string Describe(const Command& c) {
  return c.command_id + "|" + c.case_id + "|" + CaseActionName(c.action) + "|" + c.actor + "|" + RoleName(c.role) +
         "|" + std::to_string(c.ts_ms) + "|" + c.note + "|" + c.department + "|" + c.into + "|" +
         std::to_string(c.duration_ms) + "|" + c.unit_id;
}

void CheckAccepted(const Command& c) {
  fuzz::CheckId("command_id", c.command_id);
  fuzz::CheckId("case_id", c.case_id);
  fuzz::CheckId("actor", c.actor);
  fuzz::Check(c.role != Role::kSystem, "accepted role system");
  fuzz::Check(c.duration_ms >= 0 && c.duration_ms <= ingest::kMaxCommandDurationMs,
              "accepted duration " + std::to_string(c.duration_ms));
  if (c.action == CaseAction::kExtend) fuzz::Check(c.duration_ms > 0, "accepted extend without a duration");
  if (c.action == CaseAction::kMerge) fuzz::Check(!c.into.empty() && c.into != c.case_id, "accepted merge into itself");
  fuzz::CheckTimestamp(c.ts_ms);
}

constexpr std::string_view kWarmup =
    R"({"command_id":"c-1","case_id":"CL-20261128-000123","action":"extend","actor":"op-zhang","role":"operator","ts":1764316800000,"note":"on it","duration":"2h","department":"drainage","into":"CL-20261128-000124","unit_id":"drain-07"})";

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return fuzz::FuzzJsonDecoder<ingest::CommandDecoder>(data, size, kWarmup, Describe, CheckAccepted);
}
