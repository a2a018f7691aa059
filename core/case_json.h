// JSON forms of the vocabulary types: how cases and signals are stored in
// RocksDB and shown in events and the API. ParseCaseJson accepts what
// CaseToJson writes (and ignores unknown fields, for forward compatibility).
#pragma once

#include <nlohmann/json.hpp>

#include "core/json_writer.h"
#include "core/model.h"

namespace cityloop {

// The Write* functions append the JSON straight into a writer (the hot path:
// events, audit entries, stored cases); the *ToJson forms parse that text
// into a DOM for callers that edit or inspect it (API, tests).
void WriteSignalJson(JsonWriter& w, const Signal& s);
nlohmann::json SignalToJson(const Signal& s);
Result<Signal> SignalFromJson(const nlohmann::json& j);
// with_signals false: the case without its signals (an audit entry's view; signal_count stays).
void WriteCaseJson(JsonWriter& w, const Case& c, bool with_signals = true);
std::string CaseJsonText(const Case& c, bool with_signals = true);
nlohmann::json CaseToJson(const Case& c, bool with_signals = true);
Result<Case> CaseFromJson(const nlohmann::json& j);
Result<Case> ParseCaseJson(std::string_view text);

}  // namespace cityloop
