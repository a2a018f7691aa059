// What the console (REST API, live stream, web console) needs of the engine,
// and nothing more: reads of the store, the engine's published snapshots
// (KPIs, units), the live event feed, and a way to submit operator commands
// to the commands topic. The console never touches engine state directly.
// Implemented in app/ (over storage::Store, the engine and a Kafka producer);
// tests implement it in memory. Every method may be called from any server
// thread at the same time.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/status.h"

namespace cityloop::console {

// One output event (a CloudEvents JSON record the engine published), with
// its global sequence number: strictly increasing, the SSE event id.
struct StreamEvent {
  uint64_t seq = 0;
  std::string topic;  // kafka.topics.cases or kafka.topics.dispatch
  std::string json;   // the CloudEvents record as published
};

// Fan-out of newly written events to live subscribers. The engine calls
// Publish after the batch holding the events is in the store, in seq order;
// subscribers are called on the publishing thread and must not block (queue
// and return). Thread-safe.
class EventHub {
 public:
  using Callback = std::function<void(const StreamEvent&)>;
  class Subscription {
   public:
    ~Subscription();  // unsubscribes; after it returns the callback is never called again
    Subscription(const Subscription&) = delete;
    Subscription& operator=(const Subscription&) = delete;

   private:
    friend class EventHub;
    Subscription(EventHub* hub, uint64_t id) : hub_(hub), id_(id) {}
    EventHub* hub_;
    uint64_t id_;
  };

  std::unique_ptr<Subscription> Subscribe(Callback fn);
  void Publish(const std::vector<StreamEvent>& events);
  // The seq of the newest event published (0 before any).
  uint64_t last_seq() const;
  size_t subscribers() const;

 private:
  void Unsubscribe(uint64_t id);
  mutable std::mutex mu_;
  uint64_t next_id_ = 1;
  uint64_t last_seq_ = 0;
  std::vector<std::pair<uint64_t, Callback>> subscribers_;
};

class Backend {
 public:
  virtual ~Backend() = default;

  // Cases in ascending id order, starting after after_id ("" = the first),
  // as case JSON (core/case_json.h CaseToJson, without signals). fn returns
  // false to stop.
  virtual Status ForEachCase(const std::string& after_id,
                             const std::function<bool(const nlohmann::json& kase)>& fn) const = 0;
  // One case with its signals (CaseToJson(c, true)), or nullopt.
  virtual Result<std::optional<nlohmann::json>> GetCase(const std::string& id) const = 0;
  // The case's audit entries (JSON, seq order); dispatch::Timeline makes the timeline.
  virtual Result<std::vector<nlohmann::json>> Timeline(const std::string& id) const = 0;
  // A camera snapshot's JPEG bytes, or nullopt.
  virtual Result<std::optional<std::string>> Snapshot(const std::string& id) const = 0;

  // dispatch::KpiBook::QueryJson of the engine's latest published book.
  // group_by: department|district|cell|category|day|total; days are local
  // days since 1970-01-01, inclusive.
  virtual Result<nlohmann::json> Kpi(const std::string& group_by, int64_t from_day, int64_t to_day) const = 0;
  // Every unit as the engine last stored it: [{id, department, type, status,
  // lat, lon, ts, case, ...}].
  virtual Result<nlohmann::json> Units() const = 0;
  // The city for the map: {districts: [{id, name}], departments: [{id, name}],
  // categories: [{id, name, department, priority}], grid: {rows, cols,
  // cells: [{index, code, district, street, community, row, col,
  // corners: [[lat, lon] x4]}]}, utc_offset_minutes}.
  virtual nlohmann::json City() const = 0;
  // The district of a grid cell code, for district-scoped tokens ("" if unknown).
  virtual std::string DistrictOfCell(const std::string& cell_code) const = 0;

  // Stored events with seq > after, ascending, at most max. The store keeps
  // the newest api.stream_retention events; older ones are gone (first_seq()).
  virtual Status EventsAfter(uint64_t after, size_t max, std::vector<StreamEvent>* out) const = 0;
  virtual uint64_t first_seq() const = 0;  // the oldest event still stored (0: none)
  // Event seqs come from this many independent sequences (the shards of a
  // scaled-out service; seq mod n names the sequence), each increasing.
  virtual int event_sequences() const { return 1; }
  virtual EventHub& hub() = 0;

  // Produces an operator command (CONTRACT.md cityloop.commands format) to
  // the commands topic, keyed by its case_id. OK once Kafka acknowledged it.
  virtual Status SubmitCommand(const nlohmann::json& command) = 0;

  // Store open and partitions assigned.
  virtual bool ready() const = 0;
};

}  // namespace cityloop::console
