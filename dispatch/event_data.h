// EventData: the "data" object of one case event, written field by field
// into JSON text. CaseEngine::Summary() sets the case's fields, the caller
// adds the event's own; setting a key again replaces it (as `j[key] = v`
// did when this was a nlohmann DOM). Emit() writes it once and uses the same
// text in the CloudEvent and in the audit entry.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/json_writer.h"

namespace cityloop::dispatch {

class EventData {
 public:
  EventData() : w_(Acquire()) { w_->BeginObject(); }
  EventData(const EventData& other) : w_(Acquire()), department_(other.department_) { *w_ = *other.w_; }
  EventData(EventData&&) noexcept = default;
  EventData& operator=(const EventData&) = delete;
  EventData& operator=(EventData&&) = delete;
  ~EventData() { Release(std::move(w_)); }

  template <typename T>
  void Set(std::string_view key, const T& value) {
    w_->Field(key, value);
  }
  void Set(std::string_view key, const std::string& value) {
    if (key == "department") department_ = value;
    w_->Field(key, value);
  }
  void Set(std::string_view key, std::nullptr_t) { w_->Key(key), w_->Null(); }
  void Set(std::string_view key, const nlohmann::json& value) { w_->Key(key), w_->Value(value); }
  // For a value the caller writes itself (one value, e.g. an object).
  JsonWriter& At(std::string_view key) {
    w_->Key(key);
    return *w_;
  }

  // The department the event concerns, the key of a dispatch-topic record:
  // the last string set under "department".
  const std::string& department() const { return department_; }

  // The JSON text; the object is finished (call once).
  std::string Finish() {
    w_->EndObject();
    return w_->Take();
  }

 private:
  // Writers are recycled per thread: an event's data then costs no
  // allocations beyond its text (the engine emits several per change).
  using Pool = std::vector<std::unique_ptr<JsonWriter>>;
  static Pool& pool() {
    thread_local Pool p;
    return p;
  }
  static std::unique_ptr<JsonWriter> Acquire() {
    Pool& p = pool();
    if (p.empty()) {
      auto w = std::make_unique<JsonWriter>();
      w->Reserve(1024, 32);
      return w;
    }
    auto w = std::move(p.back());
    p.pop_back();
    return w;
  }
  static void Release(std::unique_ptr<JsonWriter> w) {
    if (!w) return;  // moved from
    w->Clear();
    if (pool().size() < 16) pool().push_back(std::move(w));
  }

  std::unique_ptr<JsonWriter> w_;
  std::string department_;
};

}  // namespace cityloop::dispatch
