// The console's view of the running service (console::Backend): reads go to
// the engine's stores — one, or the owned shards' merged (RocksDB reads are
// safe from any thread) and to the
// snapshots the engine publishes (KPI book); operator actions are produced
// to the commands topic, where the engine applies them in log order like any
// other command. Nothing here touches the engine thread's state.
#pragma once

#include <algorithm>
#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include "app/engine.h"
#include "console/backend.h"
#include "core/city.h"
#include "ingest/kafka.h"

namespace cityloop::app {

class ConsoleBackend final : public console::Backend {
 public:
  // engine and hub (the one the engine publishes into) must outlive the backend.
  // ready: what /readyz reports (called on HTTP threads); default Engine::ready().
  static Result<std::unique_ptr<ConsoleBackend>> Create(std::shared_ptr<const CityModel> city, const Engine& engine,
                                                       console::EventHub& hub, const std::string& bootstrap,
                                                       std::function<bool()> ready = nullptr);
  ~ConsoleBackend() override;

  Status ForEachCase(const std::string& after_id,
                     const std::function<bool(const nlohmann::json& kase)>& fn) const override;
  Result<std::optional<nlohmann::json>> GetCase(const std::string& id) const override;
  Result<std::vector<nlohmann::json>> Timeline(const std::string& id) const override;
  Result<std::optional<std::string>> Snapshot(const std::string& id) const override;
  Result<nlohmann::json> Kpi(const std::string& group_by, int64_t from_day, int64_t to_day) const override;
  Result<nlohmann::json> Units() const override;
  nlohmann::json City() const override;
  std::string DistrictOfCell(const std::string& cell_code) const override;
  Status EventsAfter(uint64_t after, size_t max, std::vector<console::StreamEvent>* out) const override;
  uint64_t first_seq() const override;
  int event_sequences() const override { return std::max(1, city_->config().scale.shards); }
  console::EventHub& hub() override { return hub_; }
  Status SubmitCommand(const nlohmann::json& command) override;
  bool ready() const override { return ready_ ? ready_() : engine_.ready(); }

 private:
  ConsoleBackend(std::shared_ptr<const CityModel> city, const Engine& engine, console::EventHub& hub);
  // The store holding case id (null when none does), and the case's JSON into text.
  Result<std::shared_ptr<const storage::Store>> StoreOfCase(const std::string& id, std::string* text = nullptr) const;

  std::shared_ptr<const CityModel> city_;
  const Engine& engine_;
  console::EventHub& hub_;
  std::function<bool()> ready_;
  nlohmann::json city_json_;  // built once: the city section cannot change while running
  std::mutex produce_mu_;     // one command in flight at a time: each waits for its ack
  std::unique_ptr<ingest::KafkaProducer> producer_;
  Status delivery_;  // of the command in flight (guarded by produce_mu_)
};

}  // namespace cityloop::app
