#include "app/commands.h"

#include <poll.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>

#include "app/command_support.h"
#include "app/console_backend.h"
#include "app/engine.h"
#include "app/live_summary.h"
#include "app/service_notifier.h"
#include "app/simulation.h"
#include "console/api.h"
#include "core/city.h"
#include "core/config.h"
#include "core/logging.h"
#include "core/time_util.h"
#include "ingest/broker.h"

namespace cityloop::app {
namespace {

// Prints "bootstrap: HOST:PORT" and, when asked, writes it to a file
// atomically (readers poll for the file).
bool AnnounceBootstrap(const std::string& bootstrap, const std::string& file) {
  std::cout << "bootstrap: " << bootstrap << std::endl;
  if (file.empty()) return true;
  const std::string tmp = file + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << bootstrap << "\n";
    if (!out) {
      spdlog::error("cannot write {}", tmp);
      return false;
    }
  }
  std::error_code ec;
  std::filesystem::rename(tmp, file, ec);
  if (ec) spdlog::error("cannot write {}: {}", file, ec.message());
  return !ec;
}

void WaitForStop(const std::atomic<bool>& stop) {
  while (!stop.load()) std::this_thread::sleep_for(std::chrono::milliseconds(100));  // idle until a signal
}

// One --control line (kBrokerControlHelp) applied to the broker.
Status ApplyBrokerControl(ingest::EmbeddedBroker& broker, const std::string& line) {
  std::istringstream in(line);
  std::string verb;
  in >> verb;
  if (verb == "down" || verb == "up") {
    int32_t id = 0;
    if (!(in >> id)) return Status::InvalidArgument("usage: " + verb + " BROKER_ID");
    return broker.SetBrokerDown(id, verb == "down");
  }
  if (verb == "errors") {
    std::string api;
    if (!(in >> api)) return Status::InvalidArgument("usage: errors API ERR[*N] ...");
    auto key = ingest::KafkaApiKey(api);
    if (!key.ok()) return key.status();
    std::vector<int> codes;
    for (std::string item; in >> item;) {
      int times = 1;
      if (auto star = item.find('*'); star != std::string::npos) {
        times = std::atoi(item.c_str() + star + 1);
        item.resize(star);
        if (times < 1 || times > 100000) return Status::InvalidArgument("bad repeat count in '" + item + "'");
      }
      auto code = ingest::KafkaErrorCode(item);
      if (!code.ok()) return code.status();
      codes.insert(codes.end(), static_cast<size_t>(times), *code);
    }
    if (codes.empty()) return Status::InvalidArgument("usage: errors API ERR[*N] ...");
    return broker.PushRequestErrors(*key, codes);
  }
  return Status::InvalidArgument("unknown command '" + verb + "'");
}

// Until stop: reads control lines from stdin (until it closes) and answers each on stdout.
void ServeBrokerControl(ingest::EmbeddedBroker& broker, const std::atomic<bool>& stop) {
  std::string pending;
  bool open = true;
  while (!stop.load()) {
    if (!open) {
      WaitForStop(stop);
      break;
    }
    pollfd p{STDIN_FILENO, POLLIN, 0};
    if (poll(&p, 1, 100) <= 0) continue;  // a bounded wait, to look at stop again
    char buf[4096];
    const ssize_t n = read(STDIN_FILENO, buf, sizeof buf);
    if (n <= 0) {
      open = false;
      continue;
    }
    pending.append(buf, static_cast<size_t>(n));
    for (size_t nl; (nl = pending.find('\n')) != std::string::npos;) {
      std::string line = pending.substr(0, nl);
      pending.erase(0, nl + 1);
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (line.empty() || line[0] == '#') continue;
      Status st = ApplyBrokerControl(broker, line);
      if (st.ok()) {
        std::cout << "control: ok " << line << std::endl;
      } else {
        std::cout << "control: error: " << st.message() << std::endl;
      }
    }
  }
}

// The STATUS= line systemd shows: what an operator checks first.
std::string ServiceStatusLine(const MetricsRegistry& m, bool ready) {
  std::ostringstream out;
  out << (ready ? "ready" : "not ready (Kafka unreachable or partitions not assigned)") << ": "
      << m.CounterTotal("cityloop_ingest_messages_total") << " inputs read, lag "
      << static_cast<int64_t>(m.GaugeTotal("cityloop_ingest_lag")) << ", "
      << static_cast<int64_t>(m.GaugeTotal("cityloop_cases_open")) << " open cases, outbox "
      << static_cast<int64_t>(m.GaugeTotal("cityloop_outbox_pending"));
  return out.str();
}

}  // namespace

const char* const kBrokerControlHelp =
    "With --control, stdin takes fault commands, one per line, each answered on stdout with\n"
    "'control: ok LINE' or 'control: error: WHY':\n"
    "  down ID                 broker ID (1-based) closes its connections and refuses new ones\n"
    "  up ID                   ... and takes them again\n"
    "  errors API ERR[*N] ...  the next requests of API (Produce, Fetch, Metadata, ... or the number)\n"
    "                          fail with these Kafka errors in order (NOT_LEADER_FOR_PARTITION,\n"
    "                          REQUEST_TIMED_OUT, INVALID_RECORD, ... or numbers; *N repeats)\n"
    "Lines starting with # are ignored; the broker keeps running when stdin closes.";

std::shared_ptr<const CityModel> LoadCity(const std::string& path) {
  ConfigLoadResult loaded = LoadConfigFile(path);
  if (!loaded.config) {
    for (const auto& e : loaded.errors) std::cerr << e.ToString() << "\n";
    std::cerr << path << ": " << loaded.errors.size() << " error(s)\n";
    return nullptr;
  }
  auto city = CityModel::Build(*loaded.config);
  if (!city.ok()) {
    std::cerr << path << ":0: city: " << city.status().message() << "\n";
    return nullptr;
  }
  return std::move(city).value();
}

int InitGlobal(const GlobalFlags& flags) {
  Status st = InitLogging(flags.log_format, flags.log_level);
  if (!st.ok()) {
    std::cerr << st.message() << "\n";
    return kExitUsage;
  }
  return kExitOk;
}

int ValidateCommand(const ValidateArgs& args) {
  auto city = LoadCity(args.config);
  if (!city) return kExitUsage;
  const Config& c = city->config();
  std::cout << "ok: " << args.config << " (" << c.city.districts.size() << " districts, " << city->grid().cell_count()
            << " cells, " << c.city.devices.size() << " devices, " << c.city.units.size() << " units, "
            << c.rules.size() << " rules)\n";
  return kExitOk;
}

int BrokerCommand(const BrokerArgs& args, const std::atomic<bool>& stop) {
  KafkaOptions kafka;
  int shards = 0;
  if (!args.config.empty()) {
    auto city = LoadCity(args.config);
    if (!city) return kExitUsage;
    kafka = city->config().kafka;
    shards = city->config().scale.shards;
  }
  if (args.partitions > 0) kafka.partitions = args.partitions;
  auto broker = ingest::EmbeddedBroker::Start(ingest::BrokerOptionsFor(kafka, shards));
  if (!broker.ok()) {
    spdlog::error("broker failed to start: {}", broker.status().ToString());
    return kExitRuntime;
  }
  if (!AnnounceBootstrap((*broker)->bootstrap(), args.bootstrap_file)) return kExitRuntime;
  spdlog::info("embedded broker up at {}; Ctrl-C to stop", (*broker)->bootstrap());
  if (args.control) {
    ServeBrokerControl(**broker, stop);
  } else {
    WaitForStop(stop);
  }
  spdlog::info("broker stopping");
  return kExitOk;
}

int RunServiceCommand(const RunArgs& args, const std::atomic<bool>& stop, std::atomic<bool>* reload) {
  auto city = LoadCity(args.config);
  if (!city) return kExitUsage;
  const Config& cfg = city->config();
  const Clock& clock = SystemClock::instance();
  MetricsRegistry metrics;

  std::unique_ptr<ingest::EmbeddedBroker> broker;
  std::string bootstrap = args.bootstrap.empty() ? cfg.kafka.bootstrap : args.bootstrap;
  if (args.embedded_kafka) {
    auto started = ingest::EmbeddedBroker::Start(ingest::BrokerOptionsFor(cfg.kafka, cfg.scale.shards));
    if (!started.ok()) {
      spdlog::error("embedded broker failed to start: {}", started.status().ToString());
      return kExitRuntime;
    }
    broker = std::move(started).value();
    bootstrap = broker->bootstrap();
    if (!AnnounceBootstrap(bootstrap, args.bootstrap_file)) return kExitRuntime;
  }

  EngineOptions eo;
  eo.bootstrap = bootstrap;
  eo.store_path = args.store;
  eo.exit_when_caught_up = args.exit_when_caught_up;
  eo.config_path = args.config;
  eo.record_dir = args.record;
  console::EventHub hub;  // engine -> live stream
  eo.hub = &hub;
  auto engine = Engine::Create(city, eo, clock, &metrics);
  if (!engine.ok()) {
    spdlog::error("engine failed to start: {}", engine.status().ToString());
    return engine.status().code() == StatusCode::kInvalidArgument ? kExitUsage : kExitRuntime;
  }
  Engine* eng = engine->get();

  const std::string listen = args.listen.empty() ? cfg.api.listen : args.listen;
  // Ready: the engine has its partitions and its consumer reaches the cluster.
  auto ready = [eng] { return eng->ready() && ingest::KafkaBrokersReachable(); };
  auto backend = ConsoleBackend::Create(city, *eng, hub, bootstrap, ready);
  if (!backend.ok()) {
    spdlog::error("console backend failed to start: {}", backend.status().ToString());
    return kExitRuntime;
  }
  auto http = console::ApiServer::Start(**backend, cfg.api, metrics, listen);
  if (!http.ok()) {
    spdlog::error("HTTP server failed to start on {}: {}", listen, http.status().ToString());
    return kExitRuntime;
  }
  spdlog::info("HTTP on {}:{} (console /, API /api/v1, /metrics, /livez, /readyz)",
               listen.substr(0, listen.rfind(':')), (*http)->port());

  std::atomic<bool> engine_done{false};
  std::thread simulator;
  if (args.simulate) {
    SimulationRun run;
    run.bootstrap = bootstrap;
    run.paced = true;
    run.sim.seed = args.seed;
    run.sim.rate = args.rate;
    // Start half an hour back and catch up at 30x: incidents show within a
    // minute, then the city goes on in real time.
    run.sim.start_ms = clock.now_ms() - 30 * 60000;
    run.speed = 30;
    run.sim.incident_every_ms = 90000;
    // Frames only from now on: rendering half an hour of video to catch up
    // would only be dropped as overload.
    run.sim.frame_fps = args.camera_fps < 0 ? cfg.camera.fps : args.camera_fps;
    run.sim.frames_from_ms = clock.now_ms();
    // The engine catches up on the past half hour for about a minute, and
    // frames it reads late are dropped as overload: scenes start after that.
    run.sim.first_scene_after_ms = 2 * 60000;
    simulator = std::thread([city, run, &clock, &stop, &engine_done] {
      auto r = RunSimulation(city, run, clock, engine_done);
      if (!r.ok() && !stop.load()) spdlog::error("simulator stopped: {}", r.status().ToString());
    });
  }
  std::thread summary;
  if (args.summary) {
    summary = std::thread([&] {
      LiveSummary s(metrics, clock, cfg.city.utc_offset_minutes);
      while (!engine_done.load()) {
        s.MaybePrint();
        std::this_thread::sleep_for(std::chrono::milliseconds(200));  // refresh tick of the display
      }
      s.Print();
    });
  }

  // systemd (Type=notify): READY, STATUS, the watchdog, RELOADING, STOPPING.
  // Under systemd SIGHUP goes through the lifecycle, which tells systemd
  // around the engine's reload; otherwise straight to the engine.
  ServiceNotifier notifier(NotifyEnvironmentFromEnv(getpid()));
  std::atomic<bool> engine_reload{false};
  LifecycleHooks hooks;
  hooks.ready = ready;
  hooks.heartbeat_ms = [eng] { return eng->loop_heartbeat_ms(); };
  hooks.status = [&metrics, ready] { return ServiceStatusLine(metrics, ready()); };
  hooks.reloads_done = [&metrics] { return metrics.CounterTotal("cityloop_config_reloads_total"); };
  ServiceLifecycle lifecycle(&notifier, hooks, {&stop, notifier.enabled() ? reload : nullptr, &engine_reload});
  lifecycle.Start();
  if (notifier.enabled()) {
    spdlog::info("systemd notification socket {}{}", std::getenv("NOTIFY_SOCKET"),
                 notifier.watchdog_usec() > 0
                     ? fmt::format(", watchdog {} ms (pinged while the engine loop turns)", notifier.watchdog_usec() / 1000)
                     : std::string());
  }

  Status st = eng->Run(stop, notifier.enabled() ? &engine_reload : reload);
  lifecycle.Finish(st);
  engine_done.store(true);
  if (simulator.joinable()) simulator.join();
  if (summary.joinable()) summary.join();
  (*http)->Stop();
  return st.ok() ? kExitOk : kExitRuntime;
}

int SimulateCommand(const SimulateArgs& args, const std::atomic<bool>& stop) {
  auto city = LoadCity(args.config);
  if (!city) return kExitUsage;
  const Clock& clock = SystemClock::instance();
  if (args.fast && args.duration_s <= 0) {
    std::cerr << "--fast needs a --duration\n";
    return kExitUsage;
  }
  if (args.speed <= 0) {
    std::cerr << "--speed must be positive\n";
    return kExitUsage;
  }
  if (args.rate <= 0) {
    std::cerr << "--rate must be positive\n";
    return kExitUsage;
  }
  if (args.operate && !args.units) {
    std::cerr << "--operate needs the units (drop --no-units)\n";
    return kExitUsage;
  }
  SimulationRun run;
  run.units = args.units;
  run.operate = args.operate;
  run.bootstrap = args.bootstrap;
  run.truth_path = args.truth;
  run.paced = !args.fast;
  run.speed = args.speed;
  run.sim.seed = args.seed;
  run.sim.rate = args.rate;
  run.sim.duration_ms = args.duration_s * 1000;
  if (!args.incident_every.empty()) {
    auto every = ParseDurationMs(args.incident_every);
    if (!every || *every <= 0) {
      std::cerr << "--incident-every: not a duration: " << args.incident_every << "\n";
      return kExitUsage;
    }
    run.sim.incident_every_ms = *every;
  }
  if (args.start.empty()) {
    // A fast run writes the past; with operators it leaves an hour for the
    // units' last jobs, which would otherwise lie in the engine's future.
    const int64_t tail_ms = args.fast && args.operate ? 3600000 : 0;
    run.sim.start_ms = clock.now_ms() - (args.fast ? run.sim.duration_ms + tail_ms : 0);
  } else if (auto ts = ParseRfc3339Ms(args.start)) {
    run.sim.start_ms = *ts;
  } else {
    char* end = nullptr;
    const long long ms = std::strtoll(args.start.c_str(), &end, 10);
    if (!end || *end != '\0') {
      std::cerr << "--start: not epoch ms or RFC 3339: " << args.start << "\n";
      return kExitUsage;
    }
    run.sim.start_ms = ms;
  }
  // A --fast run writes the past: its frames would only be dropped as
  // overload by a live engine, so it renders none unless asked.
  run.sim.frame_fps = args.camera_fps >= 0 ? args.camera_fps : args.fast ? 0 : city->config().camera.fps;
  run.sim.frames_from_ms = run.sim.start_ms;
  auto stats = RunSimulation(city, run, clock, stop);
  if (!stats.ok()) {
    spdlog::error("simulation failed: {}", stats.status().ToString());
    return kExitRuntime;
  }
  std::cout << "simulated " << stats->produced << " readings, " << stats->incidents << " incidents, "
            << stats->unit_reports << " unit reports, " << stats->commands << " commands ("
            << stats->orders_taken << " orders taken)\n";
  return kExitOk;
}

}  // namespace cityloop::app
