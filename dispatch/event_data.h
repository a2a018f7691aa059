// EventData: the "data" object of one case event, written field by field
// into JSON text. CaseEngine::Summary() sets the case's fields, the caller
// adds the event's own; setting a key again replaces it (as `j[key] = v`
// did when this was a nlohmann DOM). Emit() writes it once and uses the same
// text in the CloudEvent and in the audit entry.
#pragma once

#include <string>
#include <string_view>
#include <utility>

#include <nlohmann/json.hpp>

#include "core/json_writer.h"

namespace cityloop::dispatch {

class EventData {
 public:
  EventData() { w_.BeginObject(); }

  template <typename T>
  void Set(std::string_view key, const T& value) {
    w_.Field(key, value);
  }
  void Set(std::string_view key, const std::string& value) {
    if (key == "department") department_ = value;
    w_.Field(key, value);
  }
  void Set(std::string_view key, std::nullptr_t) { w_.Key(key), w_.Null(); }
  void Set(std::string_view key, const nlohmann::json& value) { w_.Key(key), w_.Value(value); }
  // For a value the caller writes itself (one value, e.g. an object).
  JsonWriter& At(std::string_view key) {
    w_.Key(key);
    return w_;
  }

  // The department the event concerns, the key of a dispatch-topic record:
  // the last string set under "department".
  const std::string& department() const { return department_; }

  // The JSON text; the object is finished (call once).
  std::string Finish() {
    w_.EndObject();
    return w_.Take();
  }

 private:
  JsonWriter w_;
  std::string department_;
};

}  // namespace cityloop::dispatch
