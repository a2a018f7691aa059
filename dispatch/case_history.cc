#include "dispatch/case_history.h"

#include "core/case_json.h"

namespace cityloop::dispatch {

using nlohmann::json;

namespace {

Result<json> ParseEntry(const std::string& text) {
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return Status::DataLoss("audit entry is not a JSON object");
  return j;
}

}  // namespace

Result<std::optional<Case>> CaseAsOf(const std::vector<std::string>& entries, int64_t at_ms) {
  const json* newest = nullptr;
  json current;
  json chosen;
  for (const std::string& text : entries) {
    auto j = ParseEntry(text);
    if (!j.ok()) return j.status();
    current = std::move(j).value();
    if (current.value("at_ms", int64_t{0}) > at_ms) continue;  // entries are in seq order, times may tie
    if (!current.contains("case")) continue;
    chosen = std::move(current);
    newest = &chosen;
  }
  if (!newest) return std::optional<Case>();
  auto c = CaseFromJson(newest->at("case"));
  if (!c.ok()) return c.status();
  return std::optional<Case>(std::move(c).value());
}

Result<json> Timeline(const std::vector<std::string>& entries) {
  json out = json::array();
  for (const std::string& text : entries) {
    auto parsed = ParseEntry(text);
    if (!parsed.ok()) return parsed.status();
    json j = std::move(parsed).value();
    j.erase("case");
    out.push_back(std::move(j));
  }
  return out;
}

}  // namespace cityloop::dispatch
