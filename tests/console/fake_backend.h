// An in-memory console::Backend for the console suites: cases, timelines,
// snapshots, KPIs, units, the city, a stored event log with retention, a real
// EventHub, and an engine stand-in answering SubmitCommand (apply, reject,
// stay silent or fail).
#pragma once

#include <algorithm>
#include <atomic>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "console/backend.h"

namespace cityloop::console::testing {

using nlohmann::json;

class FakeBackend : public Backend {
 public:
  enum class Engine { kApply, kReject, kSilent, kFail };

  FakeBackend() {
    city_ = {{"districts", {{{"id", "furong"}, {"name", "芙蓉区"}}, {{"id", "yuelu"}, {"name", "岳麓区"}}}},
             {"departments", {{{"id", "drainage"}, {"name", "排水"}}, {{"id", "municipal"}, {"name", "市政"}}}},
             {"categories", json::array()},
             {"grid", {{"rows", 1}, {"cols", 2}, {"cells", json::array()}}},
             {"utc_offset_minutes", 480}};
    cell_district_ = {{"430102001001", "furong"}, {"430104001001", "yuelu"}};
  }

  // ---- set-up (thread-safe) ----
  // A case with the CaseToJson fields the API reads; extra fields override.
  json& AddCase(const std::string& id, const std::string& district, const std::string& status,
                const json& extra = json::object()) {
    std::lock_guard<std::mutex> lock(mu_);
    json c{{"id", id},
           {"category", "waterlogging"},
           {"priority", "high"},
           {"status", status},
           {"grid", district == "furong" ? "430102001001" : "430104001001"},
           {"district", district},
           {"department", "drainage"},
           {"recommended_unit", ""},
           {"updated", 1764316800000},
           {"reworks", 0},
           {"recent_commands", json::array()},
           {"signal_count", 0},
           {"signals", json::array()}};
    for (auto& [k, v] : extra.items()) c[k] = v;
    return cases_[id] = std::move(c);
  }
  void SetTimeline(const std::string& id, std::vector<json> entries) {
    std::lock_guard<std::mutex> lock(mu_);
    timelines_[id] = std::move(entries);
  }
  void AddSnapshot(const std::string& id, std::string bytes) {
    std::lock_guard<std::mutex> lock(mu_);
    snapshots_[id] = std::move(bytes);
  }
  void SetUnits(json units) {
    std::lock_guard<std::mutex> lock(mu_);
    units_ = std::move(units);
  }
  void SetEngine(Engine e) { engine_ = e; }
  void SetReady(bool r) { ready_ = r; }
  void SetKpiError(bool e) { kpi_error_ = e; }
  // Keep only the newest n events (0: all).
  void SetRetention(size_t n) {
    std::lock_guard<std::mutex> lock(mu_);
    retention_ = n;
    Trim();
  }
  // Runs (outside the lock) at the start of every EventsAfter call.
  void OnEventsAfter(std::function<void(uint64_t after)> fn) {
    std::lock_guard<std::mutex> lock(mu_);
    on_events_after_ = std::move(fn);
  }

  // A CloudEvents record as the engine writes it.
  static std::string EventJson(const std::string& type, const std::string& subject, const json& data) {
    return json{{"specversion", "1.0"}, {"id", subject + ":" + type}, {"source", "cityloop/test"}, {"type", type},
                {"time", "2026-11-28T08:00:00.000Z"}, {"subject", subject}, {"data", data}}
        .dump();
  }
  // Data like the engine's case summary.
  static json CaseData(const std::string& id, const std::string& district, const std::string& dept = "drainage",
                       const std::string& category = "waterlogging") {
    return {{"case_id", id},
            {"district", district},
            {"department", dept},
            {"category", category},
            {"grid", district == "furong" ? "430102001001" : "430104001001"}};
  }

  // Stores an event (not published); returns its seq.
  uint64_t Store(const std::string& type, const std::string& subject, const json& data,
                 const std::string& topic = "cityloop.cases") {
    std::lock_guard<std::mutex> lock(mu_);
    StreamEvent e{next_seq_++, topic, EventJson(type, subject, data)};
    events_.push_back(e);
    all_events_.push_back(e);
    Trim();
    return e.seq;
  }
  // Publishes stored events with seq in [from, to] to the hub, in order.
  void PublishStored(uint64_t from, uint64_t to) {
    std::vector<StreamEvent> batch;
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (const auto& e : all_events_) {
        if (e.seq >= from && e.seq <= to) batch.push_back(e);
      }
    }
    hub_.Publish(batch);
  }
  // Stores and publishes one event, as the engine does (store first).
  uint64_t Emit(const std::string& type, const std::string& subject, const json& data,
                const std::string& topic = "cityloop.cases") {
    const uint64_t seq = Store(type, subject, data, topic);
    PublishStored(seq, seq);
    return seq;
  }

  std::vector<json> submitted() const {
    std::lock_guard<std::mutex> lock(mu_);
    return submitted_;
  }
  int events_after_calls() const { return events_after_calls_.load(); }

  // ---- Backend ----
  Status ForEachCase(const std::string& after_id, const std::function<bool(const json&)>& fn) const override {
    std::vector<json> page;
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (auto it = cases_.upper_bound(after_id); it != cases_.end(); ++it) {
        json c = it->second;
        c.erase("signals");
        page.push_back(std::move(c));
      }
    }
    for (const json& c : page) {
      if (!fn(c)) break;
    }
    return Status::Ok();
  }
  Result<std::optional<json>> GetCase(const std::string& id) const override {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = cases_.find(id);
    if (it == cases_.end()) return std::optional<json>();
    return std::optional<json>(it->second);
  }
  Result<std::vector<json>> Timeline(const std::string& id) const override {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = timelines_.find(id);
    return it == timelines_.end() ? std::vector<json>() : it->second;
  }
  Result<std::optional<std::string>> Snapshot(const std::string& id) const override {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = snapshots_.find(id);
    if (it == snapshots_.end()) return std::optional<std::string>();
    return std::optional<std::string>(it->second);
  }
  Result<json> Kpi(const std::string& group_by, int64_t from_day, int64_t to_day) const override {
    if (kpi_error_) return Status::IoError("kpi book unreadable");
    {
      std::lock_guard<std::mutex> lock(mu_);
      kpi_calls_.push_back({group_by, from_day, to_day});
    }
    json rows = json::array();
    if (group_by == "district") {
      rows = {{{"group", "furong"}, {"counts", {{"registered", 3}}}}, {{"group", "yuelu"}, {"counts", {{"registered", 2}}}}};
    } else if (group_by == "cell") {
      rows = {{{"group", "430102001001"}, {"counts", {{"registered", 3}}}},
              {{"group", "430104001001"}, {"counts", {{"registered", 2}}}}};
    } else {
      rows = {{{"group", "total"}, {"counts", {{"registered", 5}}}}};
    }
    return json{{"group_by", group_by}, {"from_day", from_day}, {"to_day", to_day}, {"rows", rows},
                {"formulas", json::object()}, {"definitions", json::object()}, {"weights", json::object()}};
  }
  struct KpiCall {
    std::string group;
    int64_t from, to;
  };
  std::vector<KpiCall> kpi_calls() const {
    std::lock_guard<std::mutex> lock(mu_);
    return kpi_calls_;
  }
  Result<json> Units() const override {
    std::lock_guard<std::mutex> lock(mu_);
    return units_;
  }
  json City() const override { return city_; }
  std::string DistrictOfCell(const std::string& cell_code) const override {
    auto it = cell_district_.find(cell_code);
    return it == cell_district_.end() ? "" : it->second;
  }
  Status EventsAfter(uint64_t after, size_t max, std::vector<StreamEvent>* out) const override {
    events_after_calls_.fetch_add(1);
    std::function<void(uint64_t)> hook;
    {
      std::lock_guard<std::mutex> lock(mu_);
      hook = on_events_after_;
    }
    if (hook) hook(after);
    std::lock_guard<std::mutex> lock(mu_);
    out->clear();
    for (const auto& e : events_) {
      if (e.seq > after && out->size() < max) out->push_back(e);
    }
    return Status::Ok();
  }
  uint64_t first_seq() const override {
    std::lock_guard<std::mutex> lock(mu_);
    return events_.empty() ? 0 : events_.front().seq;
  }
  EventHub& hub() override { return hub_; }

  Status SubmitCommand(const json& command) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      submitted_.push_back(command);
    }
    const std::string id = command.value("case_id", "");
    const std::string action = command.value("action", "");
    switch (engine_.load()) {
      case Engine::kFail:
        return Status::Unavailable("kafka is down");
      case Engine::kSilent:
        return Status::Ok();
      case Engine::kReject:
        Emit("city.command.rejected", id,
             {{"command_id", command.value("command_id", "")},
              {"case_id", id},
              {"action", action},
              {"actor", command.value("actor", "")},
              {"role", command.value("role", "")},
              {"reason", "status"},
              {"message", action + " is not allowed in status closed"},
              {"status", "closed"}});
        return Status::Ok();
      case Engine::kApply: {
        std::string district;
        {
          std::lock_guard<std::mutex> lock(mu_);
          auto it = cases_.find(id);
          if (it == cases_.end()) return Status::Ok();
          it->second["recent_commands"].push_back(command.value("command_id", ""));
          it->second["status"] = action == "acknowledge" ? "acknowledged" : it->second["status"];
          district = it->second.value("district", "");
        }
        Emit("city.case." + action, id, CaseData(id, district));
        return Status::Ok();
      }
    }
    return Status::Ok();
  }
  bool ready() const override { return ready_.load(); }

 private:
  // events_ is what is still stored; all_events_ everything ever written (to publish late).
  void Trim() {
    if (retention_ > 0 && events_.size() > retention_) {
      events_.erase(events_.begin(), events_.begin() + static_cast<std::ptrdiff_t>(events_.size() - retention_));
    }
  }

  mutable std::mutex mu_;
  std::map<std::string, json> cases_;
  std::map<std::string, std::vector<json>> timelines_;
  std::map<std::string, std::string> snapshots_;
  json units_ = json::array();
  json city_;
  std::map<std::string, std::string> cell_district_;
  std::vector<StreamEvent> events_, all_events_;
  uint64_t next_seq_ = 1;
  size_t retention_ = 0;
  std::function<void(uint64_t)> on_events_after_;
  std::vector<json> submitted_;
  mutable std::vector<KpiCall> kpi_calls_;
  mutable std::atomic<int> events_after_calls_{0};
  std::atomic<Engine> engine_{Engine::kApply};
  std::atomic<bool> ready_{true};
  std::atomic<bool> kpi_error_{false};
  EventHub hub_;
};

}  // namespace cityloop::console::testing
