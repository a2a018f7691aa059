#include "app/simulation.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "detect/camera/scene_renderer.h"
#include "ingest/camera_scenes.h"
#include "ingest/kafka.h"

namespace cityloop::app {
namespace {

constexpr int64_t kNever = std::numeric_limits<int64_t>::max();
constexpr int kPollEvery = 200;  // records between non-blocking looks for orders

}  // namespace

Result<SimulationStats> RunSimulation(std::shared_ptr<const CityModel> city, const SimulationRun& run,
                                      const Clock& clock, const std::atomic<bool>& stop) {
  const Config& cfg = city->config();
  ingest::ProducerOptions po;
  po.bootstrap = run.bootstrap;
  po.client_id = "cityloop-simulator";
  po.properties = cfg.kafka.ProducerProperties();
  std::atomic<int64_t> failed{0};
  auto producer = ingest::KafkaProducer::Create(po, [&failed](uint64_t, const Status& st) {
    if (!st.ok()) failed.fetch_add(1);
  });
  if (!producer.ok()) return producer.status();

  std::ofstream truth;
  if (!run.truth_path.empty()) {
    truth.open(run.truth_path, std::ios::trunc);
    if (!truth) return Status::IoError("cannot write truth file " + run.truth_path);
  }
  ingest::Simulator sim(city, run.sim);
  std::unique_ptr<ingest::UnitFleet> fleet;
  if (run.units || run.operate) {
    ingest::UnitFleetOptions fo = run.fleet;
    fo.seed = run.sim.seed;
    fo.start_ms = run.sim.start_ms;
    fo.operate = run.operate;
    fleet = std::make_unique<ingest::UnitFleet>(city, fo);
  }
  // The operators' view of cityloop.dispatch: a group of their own, from
  // the beginning (the fleet ignores orders older than the run).
  std::unique_ptr<ingest::KafkaConsumer> orders;
  std::atomic<int64_t> assigned_wall{0};  // set on the polling thread (this one)
  if (run.operate) {
    ingest::ConsumerOptions co;
    co.bootstrap = run.bootstrap;
    co.group_id = run.operate_group.empty() ? cfg.kafka.group_id + "-sim-operators" : run.operate_group;
    co.client_id = "cityloop-simulator";
    co.topics = {cfg.kafka.topics.dispatch};
    co.properties = cfg.kafka.ConsumerProperties();
    auto consumer = ingest::KafkaConsumer::Create(
        co, [](const std::string&, int32_t) { return std::optional<int64_t>(); },
        [&](bool assigned, const std::vector<ingest::PartitionOffset>&) {
          if (assigned) assigned_wall.store(clock.now_ms());
        });
    if (!consumer.ok()) return consumer.status();
    orders = std::move(consumer).value();
  }

  SimulationStats stats;
  std::map<std::string, std::unique_ptr<detect::camera::SceneRenderer>> renderers;  // camera id -> its street
  // City time runs with the clock from the first reading on.
  const int64_t wall_start = clock.now_ms();
  const int64_t city_start = run.sim.start_ms;
  int64_t city_now = city_start;  // the newest record produced
  auto write_truth = [&] {
    for (const auto& inc : sim.TakeStartedIncidents()) {
      ++stats.incidents;
      if (truth) truth << inc.ToJson() << "\n" << std::flush;
      std::string where;
      for (const auto& id : inc.devices) where += (where.empty() ? "" : "+") + id;
      spdlog::info("simulator: injected {} at {} ({})", inc.kind, where, inc.cell_code);
    }
  };
  // The city time an order received now arrives at: paced, where the clock
  // has brought the city; fast, the newest record produced.
  auto city_time = [&] {
    if (!run.paced) return city_now;
    const int64_t wall = clock.now_ms();
    const int64_t sped = city_start + static_cast<int64_t>(static_cast<double>(wall - wall_start) * run.speed);
    return std::max(city_now, std::min(sped, wall));
  };
  int64_t last_order_wall = 0;
  std::vector<ingest::Message> polled;
  auto take_orders = [&](int timeout_ms) -> Status {
    polled.clear();
    CL_RETURN_IF_ERROR(orders->Poll(100, timeout_ms, &polled));
    for (const ingest::Message& m : polled) {
      last_order_wall = clock.now_ms();
      const std::optional<ingest::DispatchEvent> e = ingest::ParseDispatchEvent(m.value);
      if (!e) continue;
      const ingest::DispatchOrder& o = e->order;
      if (e->kind == ingest::DispatchEvent::Kind::kCancelled) {
        if (fleet->OnCancelled(o.case_id, o.department, std::max(city_time(), o.ts_ms))) {
          spdlog::info("simulator: {} called off case {}", o.department, o.case_id);
        }
        continue;
      }
      const std::string why = fleet->OnOrder(o, city_time());
      if (why.empty()) {
        spdlog::info("simulator: {} takes case {} ({})", o.unit_id, o.case_id, o.department);
      } else if (why != "before_start") {
        spdlog::info("simulator: order for case {} ({}) not taken: {}", o.case_id, o.department, why);
      }
    }
    return Status::Ok();
  };
  // Waits until a record of city time ts is due (paced runs), taking orders
  // meanwhile. False when an order made the fleet due before ts: pick again.
  int since_poll = 0;
  auto wait_due = [&](int64_t ts) -> Result<bool> {
    if (orders && ++since_poll >= kPollEvery) {
      since_poll = 0;
      CL_RETURN_IF_ERROR(take_orders(0));
    }
    if (run.paced) {
      const int64_t due =
          std::max(wall_start + static_cast<int64_t>(static_cast<double>(ts - city_start) / run.speed), ts);
      while (!stop.load() && clock.now_ms() < due) {
        (*producer)->Poll(0);
        // Pacing: the record is not due yet.
        const int wait_ms = static_cast<int>(std::min<int64_t>(100, due - clock.now_ms()));
        if (orders) {
          CL_RETURN_IF_ERROR(take_orders(wait_ms));
          if (fleet->next_ms() < ts) return false;
        } else {
          std::this_thread::sleep_for(std::chrono::milliseconds(wait_ms));
        }
      }
    }
    return !(fleet && fleet->next_ms() < ts);
  };
  auto produce = [&](const ingest::SimulatedReading& r) -> Status {
    Status st;
    if (r.frame) {
      auto& renderer = renderers[r.key];
      if (!renderer) {
        renderer = std::make_unique<detect::camera::SceneRenderer>(
            ingest::SceneSpecFor(*city->FindCamera(r.key), run.sim.seed));
      }
      st = (*producer)->Produce(r.topic, r.key, renderer->RenderJpeg(r.ts_ms, r.scene),
                                {{"camera_id", r.key}, {"ts", std::to_string(r.ts_ms)}, {"content-type", "image/jpeg"}},
                                0, -1, r.ts_ms);
    } else {
      // Stamped with the city time it describes, as a device gateway would:
      // a recording then replays in that order however fast it was produced.
      st = (*producer)->Produce(r.topic, r.key, r.value, {}, 0, -1, r.ts_ms);
    }
    if (!st.ok()) return st;
    ++stats.produced;
    ++stats.by_topic[r.topic];
    city_now = std::max(city_now, r.ts_ms);
    if (stats.produced % 1000 == 0) (*producer)->Poll(0);
    return Status::Ok();
  };

  ingest::SimulatedReading r;
  bool have = sim.Next(&r);
  int64_t tail_since = have ? 0 : clock.now_ms();  // wall time the duration ended
  std::vector<ingest::SimulatedReading> fleet_out;
  while (!stop.load()) {
    const int64_t fleet_due = fleet ? fleet->next_ms() : kNever;
    // After the duration only a busy fleet goes on (idle units report forever).
    const bool fleet_first = fleet_due != kNever && (have ? fleet_due < r.ts_ms : fleet->busy());
    if (fleet_first) {
      auto due = wait_due(fleet_due);
      if (!due.ok()) return due.status();
      if (!*due) continue;
      fleet_out.clear();
      fleet->Advance(fleet_due, &fleet_out);
      for (const ingest::SimulatedReading& f : fleet_out) CL_RETURN_IF_ERROR(produce(f));
      continue;
    }
    if (have) {
      auto due = wait_due(r.ts_ms);
      if (!due.ok()) return due.status();
      if (!*due) continue;
      CL_RETURN_IF_ERROR(produce(r));
      write_truth();
      have = sim.Next(&r);
      if (!have) tail_since = clock.now_ms();
      continue;
    }
    // The duration is over and every unit is home: wait a while for orders
    // the engine has still to send (it may be reading the last input).
    if (!orders) break;
    const int64_t now = clock.now_ms();
    const int64_t assigned = assigned_wall.load();
    if (assigned == 0) {
      if (now - tail_since >= 3 * run.operate_linger_ms) {
        spdlog::warn("simulator: never got a partition of {}; giving up on orders", cfg.kafka.topics.dispatch);
        break;
      }
    } else if (now - std::max({tail_since, last_order_wall, assigned}) >= run.operate_linger_ms) {
      break;
    }
    (*producer)->Poll(0);
    CL_RETURN_IF_ERROR(take_orders(100));
  }
  write_truth();
  if (orders) orders->Close();
  if (fleet) {
    stats.unit_reports = fleet->stats().reports;
    stats.commands = fleet->stats().commands;
    stats.orders_taken = fleet->stats().orders_taken;
    stats.orders_ignored = fleet->stats().orders_ignored;
  }
  CL_RETURN_IF_ERROR((*producer)->Flush(30000));
  if (failed.load() > 0) return Status::Unavailable(std::to_string(failed.load()) + " records were not delivered");
  return stats;
}

}  // namespace cityloop::app
