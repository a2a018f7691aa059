#include "app/simulation.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <thread>

#include "detect/camera/scene_renderer.h"
#include "ingest/camera_scenes.h"
#include "ingest/kafka.h"

namespace cityloop::app {

Result<SimulationStats> RunSimulation(std::shared_ptr<const CityModel> city, const SimulationRun& run,
                                      const Clock& clock, const std::atomic<bool>& stop) {
  ingest::ProducerOptions po;
  po.bootstrap = run.bootstrap;
  po.client_id = "cityloop-simulator";
  po.properties = city->config().kafka.properties;
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
  SimulationStats stats;
  ingest::SimulatedReading r;
  std::map<std::string, std::unique_ptr<detect::camera::SceneRenderer>> renderers;  // camera id -> its street
  // City time runs with the clock from the first reading on.
  const int64_t wall_start = clock.now_ms();
  const int64_t city_start = run.sim.start_ms;
  auto write_truth = [&] {
    for (const auto& inc : sim.TakeStartedIncidents()) {
      ++stats.incidents;
      if (truth) truth << inc.ToJson() << "\n" << std::flush;
      std::string where;
      for (const auto& id : inc.devices) where += (where.empty() ? "" : "+") + id;
      spdlog::info("simulator: injected {} at {} ({})", inc.kind, where, inc.cell_code);
    }
  };
  while (!stop.load() && sim.Next(&r)) {
    if (run.paced) {
      const int64_t due =
          std::max(wall_start + static_cast<int64_t>(static_cast<double>(r.ts_ms - city_start) / run.speed), r.ts_ms);
      while (!stop.load() && clock.now_ms() < due) {
        (*producer)->Poll(0);
        // Pacing: the reading is not due yet.
        std::this_thread::sleep_for(std::chrono::milliseconds(std::min<int64_t>(100, due - clock.now_ms())));
      }
    }
    Status st;
    if (r.frame) {
      auto& renderer = renderers[r.key];
      if (!renderer) {
        renderer = std::make_unique<detect::camera::SceneRenderer>(
            ingest::SceneSpecFor(*city->FindCamera(r.key), run.sim.seed));
      }
      st = (*producer)->Produce(r.topic, r.key, renderer->RenderJpeg(r.ts_ms, r.scene),
                                {{"camera_id", r.key}, {"ts", std::to_string(r.ts_ms)}, {"content-type", "image/jpeg"}});
    } else {
      st = (*producer)->Produce(r.topic, r.key, r.value);
    }
    if (!st.ok()) return st;
    ++stats.produced;
    ++stats.by_topic[r.topic];
    write_truth();
    if (stats.produced % 1000 == 0) (*producer)->Poll(0);
  }
  write_truth();
  CL_RETURN_IF_ERROR((*producer)->Flush(30000));
  if (failed.load() > 0) return Status::Unavailable(std::to_string(failed.load()) + " records were not delivered");
  return stats;
}

}  // namespace cityloop::app
