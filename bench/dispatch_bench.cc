// dispatch_bench: the case engine at scale, without Kafka or RocksDB (see
// docs/PERFORMANCE.md "Dispatch").
//
// City: the example config with each 500 m grid cell cut into 5 x 5 cells of
// 100 m (万米单元网格: 30 x 40 = 1 200 cells over the same 3 x 4 km; the
// communities' rectangles scaled with it), merge.radius_m 0 and merge.window
// 1 min, so that N generated signals open N cases: 14 categories (7 sensor,
// 4 camera, 3 report; ids, attributes and explanations as the detectors
// write them) x 1 200 cells per round, rounds 61 s apart, all priority
// normal. The first thing due on every case is then its acknowledge clock's
// yellow light (48 min after dispatch; the next, a reminder, at 55 min).
// Each figure is printed with a baseline measured in the same run:
//
//   memory    process RSS growth per open case after OnSignal of the N
//             signals (malloc_trim before each reading), and
//             CaseEngine::OpenCaseBytes() / N; baseline: the RSS growth of
//             the same N Signals in a std::vector<Signal> (the input alone).
//   timers    ns per fired timer while AdvanceTo moves the watermark in 1 s
//             steps over every case's acknowledge warning instant (one
//             yellow light per case); baseline: as many erase+insert pairs
//             on a std::set<std::pair<int64_t, std::string>> of N (due,
//             case id) entries, the timer index's own work.
//   commands  OnCommand calls per second on one thread: acknowledge,
//             enroute, arrive, handled, verify_pass on M of the N open cases
//             (every N/M-th; 5 M Commands built beforehand, timed in batches
//             of 1000; Effects cleared between batches, untimed); baseline:
//             ingest::CommandDecoder::Decode of the same commands' JSON (the
//             step before OnCommand in the engine).
//   kpi       KpiBook::QueryJson(department) over a 30-day month of K cases
//             (the example's 48 cells, 14 categories, 7 departments; median
//             of 7); baseline: one pass summing an int64 field of K 64-byte
//             structs (the least a query that scans cases would cost).
//
// Timed sections count the thread's CPU time (CLOCK_THREAD_CPUTIME_ID): the
// machine is shared and the goals are per core; each phase prints its wall
// and CPU seconds too, and the KPI query its wall-clock median.
//
// Also printed: where the memory goes (the same cases copied into a
// std::map<std::string, Case> without their signals; the KpiBook alone),
// per-action command rates, JSON bytes produced per command, the cost of
// the case snapshot every audit entry carries (CaseJsonText), and the KPI
// month's histogram bins merged by Query next to the same bins
// summed into dense arrays.
//
//   ./build/bin/dispatch_bench [--cases N] [--command-cases M] [--kpi-cases K] [--quick] [--seed S]
//                              [--config PATH]
// Defaults N 100000, M 20000 (the rate is per command on an engine holding N
// open cases; M = N walks all of them, about 5 x longer), K 1000000;
// --quick: N 2000, M = N, K 20000 (unless given).
// Run from the project root. Exit 0 when it ran (goals met or not), 2 on a
// setup failure.
#include <benchmark/benchmark.h>
#include <malloc.h>
#include <time.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <iterator>
#include <map>
#include <memory>
#include <numbers>
#include <random>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "bench/bench_util.h"
#include "core/case_json.h"
#include "core/city.h"
#include "core/config.h"
#include "core/model.h"
#include "core/time_util.h"
#include "dispatch/case_engine.h"
#include "dispatch/kpi.h"
#include "ingest/command_decoder.h"

namespace cityloop {
namespace {

using dispatch::CaseEngine;
using dispatch::Effects;
// Timed sections count this thread's CPU time: the machine is shared, and
// the goals are per core. Each phase also prints its wall-clock time.
struct CpuClock {
  using duration = std::chrono::nanoseconds;
  using rep = duration::rep;
  using period = duration::period;
  using time_point = std::chrono::time_point<CpuClock>;
  static constexpr bool is_steady = true;
  static time_point now() {
    timespec ts{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return time_point(duration(int64_t{ts.tv_sec} * 1000000000 + ts.tv_nsec));
  }
};
using Clock = CpuClock;
using Wall = std::chrono::steady_clock;

constexpr const char* kBench = "dispatch_bench";

struct Flags {
  int64_t cases = 100000;
  int64_t kpi_cases = 1000000;
  int64_t command_cases = 20000;  // the cases commands walk through the workflow (of the N open ones)
  uint64_t seed = 1;
  std::string config = "deploy/cityloop.example.yaml";
};

[[noreturn]] void Fail(const std::string& what) { bench::Fail(kBench, what); }

Flags ParseFlags(int argc, char** argv) {
  Flags f;
  bool quick = false, cases_given = false, kpi_given = false, commands_given = false;
  bench::ForEachFlag(kBench, argc, argv, [&](const std::string& a, auto value) {
    if (a == "--cases") f.cases = std::stoll(value()), cases_given = true;
    else if (a == "--kpi-cases") f.kpi_cases = std::stoll(value()), kpi_given = true;
    else if (a == "--command-cases") f.command_cases = std::stoll(value()), commands_given = true;
    else if (a == "--quick") quick = true;
    else if (a == "--seed") f.seed = std::stoull(value());
    else if (a == "--config") f.config = value();
    else return false;
    return true;
  });
  if (quick && !cases_given) f.cases = 2000;
  if (quick && !kpi_given) f.kpi_cases = 20000;
  if (quick && !commands_given) f.command_cases = f.cases;
  f.command_cases = std::min(f.command_cases, f.cases);
  if (f.cases < 1 || f.kpi_cases < 1 || f.command_cases < 1) Fail("counts must be positive");
  return f;
}

double Seconds(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); }
int64_t Nanos(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(b - a).count();
}

// Wall and CPU time of a phase, printed when it ends.
class Phase {
 public:
  explicit Phase(const char* name) : name_(name), wall_(Wall::now()), cpu_(Clock::now()) {}
  void End() {
    std::printf("[phase %s: %.1f s wall, %.1f s CPU]\n", name_, std::chrono::duration<double>(Wall::now() - wall_).count(),
                std::chrono::duration<double>(Clock::now() - cpu_).count());
    std::fflush(stdout);
  }

 private:
  const char* name_;
  Wall::time_point wall_;
  Clock::time_point cpu_;
};

// Resident bytes after handing free heap pages back, so a figure counts what is kept.
double RssBytes() {
  malloc_trim(0);
  return bench::RssMiB() * 1024.0 * 1024.0;
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// One figure: name, value, unit, baseline, ratio value/baseline, goal, verdict.
void Line(const char* name, double value, const char* unit, const char* baseline_name, double baseline,
          const char* goal, const char* verdict) {
  auto fmt = [](double v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, std::abs(v) < 100 ? "%.3f" : "%.0f", v);
    return std::string(buf);
  };
  std::printf("%-22s %12s %-9s | baseline %-38s %12s | ratio %8.3f | goal %-12s %s\n", name, fmt(value).c_str(),
              unit, baseline_name, fmt(baseline).c_str(), baseline != 0 ? value / baseline : 0.0, goal, verdict);
}

Config LoadExample(const Flags& flags) {
  ConfigLoadResult loaded = LoadConfigFile(flags.config);
  if (!loaded.config) Fail("config " + flags.config + ": " + (loaded.errors.empty() ? "" : loaded.errors[0].ToString()));
  return *loaded.config;
}

std::shared_ptr<const CityModel> Build(const Config& c) {
  auto city = CityModel::Build(c);
  if (!city.ok()) Fail("city: " + city.status().ToString());
  return *city;
}

// The example city in 100 m cells (each 500 m cell becomes 5 x 5), merging
// only same-cell signals less than a minute apart.
Config EngineConfig(Config c) {
  constexpr int kSplit = 5;
  c.city.grid.cell_size_m /= kSplit;
  c.city.grid.rows *= kSplit;
  c.city.grid.cols *= kSplit;
  for (Community& com : c.city.communities) {
    com.row_from *= kSplit;
    com.row_to = com.row_to * kSplit + kSplit - 1;
    com.col_from *= kSplit;
    com.col_to = com.col_to * kSplit + kSplit - 1;
  }
  c.rules.merge_radius_m = 0;
  c.rules.merge_window_ms = 60000;
  return c;
}

// ---- Signals

struct SignalKind {
  const char* category;
  SignalSource source;
  const char* rule;         // sensor and camera rules
  const char* sensor_kind;  // a sensor kind, or "camera"
  const char* device;       // device id prefix; for cameras the label seen
  double value, threshold;
  int64_t held_ms;          // how long the condition held before the signal fired
};
constexpr SignalKind kKinds[] = {
    {"waterlogging", SignalSource::kSensor, "road-waterlogging", "water_level", "wl", 0.42, 0.30, 120000},
    {"manhole_displaced", SignalSource::kSensor, "manhole-displaced", "manhole_tilt", "mh", 21.5, 15, 60000},
    {"air_pollution", SignalSource::kSensor, "air-pm25", "pm25", "pm", 182, 150, 600000},
    {"noise", SignalSource::kSensor, "noise-level", "noise_db", "ns", 91, 85, 600000},
    {"bridge_structural", SignalSource::kSensor, "bridge-strain", "bridge_strain", "br", 1620, 1500, 60000},
    {"streetlight_failure", SignalSource::kSensor, "streetlight-failure", "streetlight_current", "sl", 0.05, 0.2,
     300000},
    {"traffic_congestion", SignalSource::kSensor, "traffic-congestion", "traffic_speed", "ts", 4.2, 8, 600000},
    {"road_obstacle", SignalSource::kCamera, "frame:stationary", "camera", "object", 0.91, 0.6, 30000},
    {"wrong_way_driving", SignalSource::kCamera, "frame:wrong_way", "camera", "vehicle", 0.84, 0.6, 1500},
    {"crowd_gathering", SignalSource::kCamera, "frame:crowd", "camera", "person", 0.77, 0.6, 30000},
    {"camera_fault", SignalSource::kCamera, "frame:tamper", "camera", "tamper", 0.95, 0.6, 10000},
    {"exposed_garbage", SignalSource::kReport, "report", "", "", 0, 0, 0},
    {"road_damage", SignalSource::kReport, "report", "", "", 0, 0, 0},
    {"illegal_parking", SignalSource::kReport, "report", "", "", 0, 0, 0},
};
constexpr int64_t kKindCount = static_cast<int64_t>(std::size(kKinds));

constexpr int64_t kStartMs = 1796086800000;  // 2026-12-01T09:00+08:00, a Tuesday, working hours
constexpr int64_t kRoundMs = 61000;          // > merge.window: a key's next signal opens a new case
constexpr int64_t kRoundSpanMs = 55000;      // one round's signals are spread over this

std::vector<Signal> MakeSignals(const CityModel& city, int64_t n, uint64_t seed) {
  std::vector<Signal> out;
  out.reserve(static_cast<size_t>(n));
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> jitter(-0.4, 0.4);
  const int64_t keys = city.grid().cell_count() * kKindCount;
  const double dlat = city.config().city.grid.cell_size_m / 111320.0;
  char buf[192];
  for (int64_t i = 0; i < n; ++i) {
    const int64_t round = i / keys, idx = i % keys;
    const SignalKind& k = kKinds[idx % kKindCount];
    const int cell = static_cast<int>(idx / kKindCount);
    const LatLon centre = city.Cell(cell).center;
    Signal s;
    s.source = k.source;
    s.category = k.category;
    s.priority = Priority::kNormal;
    s.cell = cell;
    s.position = {centre.lat + jitter(rng) * dlat, centre.lon + jitter(rng) * dlat / std::cos(centre.lat * std::numbers::pi / 180)};
    s.fired_ms = kStartMs + round * kRoundMs + idx * kRoundSpanMs / keys;
    s.ts_ms = s.fired_ms - k.held_ms;
    s.ingest_ms = s.fired_ms + 40;
    s.value = k.value;
    s.threshold = k.threshold;
    s.input.partition = static_cast<int32_t>(i % 4);
    s.input.offset = i / 4;
    switch (k.source) {
      case SignalSource::kSensor: {
        std::snprintf(buf, sizeof buf, "%s-c%04d", k.device, cell);
        s.device_id = buf;
        s.sensor_kind = k.sensor_kind;
        s.rule_id = k.rule;
        s.id = s.rule_id + ":" + s.device_id + ":" + std::to_string(s.ts_ms);
        s.input.topic = "city.sensors";
        std::snprintf(buf, sizeof buf, "%s %s %g (peak %g) for %llds", k.sensor_kind,
                      k.value < k.threshold ? "<=" : ">=", k.threshold, k.value,
                      static_cast<long long>(k.held_ms / 1000));
        s.explanation = buf;
        break;
      }
      case SignalSource::kCamera: {
        std::snprintf(buf, sizeof buf, "cam-c%04d", cell);
        s.device_id = buf;
        s.sensor_kind = "camera";
        s.rule_id = k.rule;
        s.id = s.rule_id + ":" + s.device_id + ":" + std::to_string(s.ts_ms);
        s.input.topic = "city.camera.frames";
        std::snprintf(buf, sizeof buf, "%.2f", k.value);
        const std::string score = buf;
        s.attributes = {{"label", k.device},
                        {"score", score},
                        {"bbox", "[0.412, 0.655, 0.118, 0.094]"},
                        {"detections", std::to_string(k.held_ms / 200)}};
        s.explanation = s.device_id + " saw " + k.device + " (score " + score + ", best " + score + ") in " +
                        std::to_string(k.held_ms / 200) + " message(s) over " + std::to_string(k.held_ms / 1000) + "s";
        break;
      }
      case SignalSource::kReport:
      case SignalSource::kCorrelation: {
        std::snprintf(buf, sizeof buf, "R2026120%07lld", static_cast<long long>(i));
        const std::string report_id = buf;
        s.source = SignalSource::kReport;
        s.id = "report:" + report_id;
        s.rule_id = "report";
        s.input.topic = "city.reports";
        s.attributes = {{"report_id", report_id},
                        {"channel", "hotline12345"},
                        {"text", "路口有垃圾堆放，影响通行，请尽快处理"}};
        s.explanation = "hotline12345 report " + report_id + " (" + s.category + ")";
        break;
      }
    }
    out.push_back(std::move(s));
  }
  return out;
}

// The ids OpenCase gives: "CL-<local date>-<number>", numbered from 1 in opening order.
std::vector<std::string> CaseIds(const std::vector<Signal>& signals, int utc_offset_minutes) {
  std::vector<std::string> ids;
  ids.reserve(signals.size());
  char number[24];
  for (size_t i = 0; i < signals.size(); ++i) {
    std::snprintf(number, sizeof number, "%06llu", static_cast<unsigned long long>(i + 1));
    ids.push_back("CL-" + FormatLocalDate(signals[i].fired_ms, utc_offset_minutes) + "-" + number);
  }
  return ids;
}

// ---- Commands

std::string CommandJson(const Command& c) {
  char buf[320];
  std::snprintf(buf, sizeof buf,
                "{\"command_id\":\"%s\",\"case_id\":\"%s\",\"action\":\"%s\",\"actor\":\"%s\",\"role\":\"%s\","
                "\"ts\":%lld}",
                c.command_id.c_str(), c.case_id.c_str(), CaseActionName(c.action), c.actor.c_str(),
                RoleName(c.role), static_cast<long long>(c.ts_ms));
  return buf;
}

// ---- KPI cases

// K synthetic cases over the 30 days from first_day_ms, into book.
void FillKpiBook(const CityModel& city, int64_t k, uint64_t seed, int64_t first_day_ms, dispatch::KpiBook* book) {
  static constexpr const char* kCategories[] = {
      "waterlogging",  "gas_leak",           "manhole_displaced", "fire",          "air_pollution",
      "noise",         "bridge_structural",  "streetlight_failure", "traffic_congestion", "road_obstacle",
      "wrong_way_driving", "crowd_gathering", "exposed_garbage",   "illegal_parking"};
  std::vector<std::string> departments;
  for (const Department& d : city.config().city.departments) departments.push_back(d.id);
  std::vector<std::string> category_dept;
  for (const char* cat : kCategories) {
    const Category* c = city.FindCategory(cat);
    if (!c) Fail(std::string("category ") + cat + " is not in the catalogue");
    category_dept.push_back(c->department);
  }
  const int utc = city.config().city.utc_offset_minutes;
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int> pick_category(0, static_cast<int>(std::size(kCategories)) - 1);
  std::uniform_int_distribution<int> pick_cell(0, city.grid().cell_count() - 1);
  std::uniform_int_distribution<int> pick_dept(0, static_cast<int>(departments.size()) - 1);
  std::uniform_int_distribution<int64_t> pick_time(0, 30 * 86400000LL - 1);
  std::uniform_real_distribution<double> u(0, 1);
  auto minutes = [&](double mean) { return static_cast<int64_t>(std::exponential_distribution<double>(1 / mean)(rng) * 60000) + 1000; };
  Case c;
  for (int64_t i = 0; i < k; ++i) {
    const int cat = pick_category(rng);
    const CellInfo& cell = city.Cell(pick_cell(rng));
    c.category = kCategories[cat];
    c.department = category_dept[static_cast<size_t>(cat)];
    c.cell_code = cell.code;
    c.district = cell.district ? cell.district->id : "";
    c.registered_ms = first_day_ms + pick_time(rng);
    c.first_event_ms = c.registered_ms - 60000;
    c.dispatched_ms = c.registered_ms + 1000;
    c.close = {};
    c.close.started_ms = c.dispatched_ms;
    c.close.deadline_ms = c.dispatched_ms + 3 * 86400000LL;
    c.reworks = u(rng) < 0.03;
    c.extensions = u(rng) < 0.04;
    c.reopens = u(rng) < 0.01;
    c.deferred = u(rng) < 0.01;
    c.tasks.clear();
    auto task = [&](const std::string& dept, bool lead, int64_t at) -> Task& {
      Task t;
      t.department = dept;
      t.lead = lead;
      t.dispatched_ms = at;
      t.acknowledge.started_ms = at;
      t.acknowledge.deadline_ms = at + 3600000;
      t.acknowledged_ms = at + minutes(15);
      t.arrived_ms = t.acknowledged_ms + minutes(20);
      t.handled_ms = t.arrived_ms + minutes(120);
      t.status = TaskStatus::kHandled;
      c.tasks.push_back(t);
      return c.tasks.back();
    };
    int64_t done = 0;
    if (u(rng) < 0.05) {  // returned by its first department, reassigned
      Task& r = task(c.department, true, c.dispatched_ms);
      r.status = TaskStatus::kReturned;
      r.arrived_ms = r.handled_ms = 0;
      c.department = departments[static_cast<size_t>(pick_dept(rng))];
      done = task(c.department, true, r.acknowledged_ms).handled_ms;
    } else {
      done = task(c.department, true, c.dispatched_ms).handled_ms;
    }
    if (u(rng) < 0.08) task(departments[static_cast<size_t>(pick_dept(rng))], false, c.dispatched_ms + 60000);
    const double fate = u(rng);
    c.closed_ms = 0;
    if (fate < 0.85) {
      c.status = CaseStatus::kClosed;
      c.closed_ms = done + minutes(60);
    } else if (fate < 0.90) {
      c.status = CaseStatus::kInvalid;
    } else {
      c.status = CaseStatus::kOnScene;
      c.tasks.back().status = TaskStatus::kOnScene;
      c.tasks.back().handled_ms = 0;
    }
    book->Replace({}, dispatch::Contribute(c, utc));
  }
}

// What a query that looks at every case would cost at the least.
struct CaseRow {
  int64_t registered_ms, dispatched_ms, closed_ms, deadline_ms;
  int32_t day, department, district, cell, category, status, tasks, flags;
};
static_assert(sizeof(CaseRow) == 64);

int Main(int argc, char** argv) {
  const Flags flags = ParseFlags(argc, argv);
  const Config example = LoadExample(flags);
  auto city = Build(EngineConfig(example));
  const int utc = city->config().city.utc_offset_minutes;
  const int64_t n = flags.cases;
  const double dn = static_cast<double>(n);
  std::printf("dispatch_bench: %lld open cases (%d cells of %.0f m, %lld categories), commands on %lld of them, "
              "%lld KPI cases; sizeof Case %zu, Task %zu, Signal %zu, Command %zu; times are thread CPU time\n",
              static_cast<long long>(n), city->grid().cell_count(), city->config().city.grid.cell_size_m,
              static_cast<long long>(kKindCount), static_cast<long long>(flags.command_cases),
              static_cast<long long>(flags.kpi_cases), sizeof(Case), sizeof(Task), sizeof(Signal), sizeof(Command));
  std::fflush(stdout);

  // ---- 1. Memory: N signals alone, then N open cases.
  Phase open_phase("open");
  const double rss0 = RssBytes();
  std::vector<Signal> signals = MakeSignals(*city, n, flags.seed);
  const double signal_bytes = (RssBytes() - rss0) / dn;

  auto engine = std::make_unique<CaseEngine>(city);
  Effects fx;
  const double rss1 = RssBytes();
  const auto open_start = Clock::now();
  for (const Signal& s : signals) {
    engine->OnSignal(s, &fx);
    fx.Clear();
  }
  const double open_s = Seconds(open_start, Clock::now());
  const double case_rss = (RssBytes() - rss1) / dn;
  const double case_est = static_cast<double>(engine->OpenCaseBytes()) / dn;
  if (engine->stats().opened != n || engine->open_count() != static_cast<size_t>(n)) {
    Fail("expected " + std::to_string(n) + " open cases, got " + std::to_string(engine->open_count()) + " (" +
         std::to_string(engine->stats().merged_signals) + " signals merged)");
  }
  const std::vector<std::string> ids = CaseIds(signals, utc);
  for (const std::string& id : {ids.front(), ids.back()}) {
    if (!engine->Find(id)) Fail("no case " + id);
  }
  int64_t first_warn = dispatch::kNever, last_warn = 0;
  for (const std::string& id : ids) {
    const Case& c = *engine->Find(id);
    if (c.tasks.size() != 1 || c.status != CaseStatus::kDispatched) Fail(id + " is not dispatched once");
    first_warn = std::min(first_warn, c.tasks[0].acknowledge.warn_ms);
    last_warn = std::max(last_warn, c.tasks[0].acknowledge.warn_ms);
  }
  const int64_t last_fired = signals.back().fired_ms;
  signals.clear();
  signals.shrink_to_fit();

  // Where it goes: the same cases without their signals in a map like cases_; the KpiBook alone.
  double record_bytes = 0, kpi_bytes = 0;
  {
    const double r0 = RssBytes();
    std::map<std::string, Case> copies;
    for (const std::string& id : ids) {
      Case c = *engine->Find(id);
      c.signals.clear();
      c.signals.shrink_to_fit();
      copies.emplace(id, std::move(c));
    }
    record_bytes = (RssBytes() - r0) / dn;
  }
  {
    const double r0 = RssBytes();
    dispatch::KpiBook book(city->config().kpi);
    for (const std::string& id : ids) book.Replace({}, dispatch::Contribute(*engine->Find(id), utc));
    kpi_bytes = (RssBytes() - r0) / dn;
  }

  std::printf("\nopen: %lld signals -> %lld cases in %.2f s (%.1f us per OnSignal)\n", static_cast<long long>(n),
              static_cast<long long>(engine->open_count()), open_s, open_s * 1e6 / dn);
  std::printf("memory split per case: Case record without signals (map node, strings, tasks) %.0f B; its signal "
              "(baseline) %.0f B; KpiBook share %.0f B; rest (merge/sensor/timer indexes, units) %.0f B\n",
              record_bytes, signal_bytes, kpi_bytes, case_rss - record_bytes - signal_bytes - kpi_bytes);
  open_phase.End();

  // ---- 2. Timers: every case's acknowledge warning.
  Phase timer_phase("timers");
  engine->AdvanceTo(last_fired, &fx);
  if (!fx.records.empty()) Fail("something was due before the acknowledge warnings");
  const auto before = engine->stats();
  int64_t timer_ns = 0, steps = 0;
  for (int64_t w = first_warn;; w = std::min(w + 1000, last_warn)) {
    const auto t0 = Clock::now();
    engine->AdvanceTo(w, &fx);
    timer_ns += Nanos(t0, Clock::now());
    ++steps;
    fx.Clear();
    if (w == last_warn) break;
  }
  const auto& after = engine->stats();
  const int64_t warnings = after.sla_warnings - before.sla_warnings;
  const int64_t fired = warnings + (after.sla_breaches - before.sla_breaches) +
                        (after.escalations - before.escalations) + (after.auto_verified - before.auto_verified);
  if (fired < 1) Fail("no timer fired");
  double set_ns = 0;
  {
    std::set<std::pair<int64_t, std::string>> timers;
    for (const std::string& id : ids) timers.emplace(engine->Find(id)->tasks[0].acknowledge.warn_ms, id);
    const auto t0 = Clock::now();
    for (int64_t i = 0; i < fired; ++i) {
      const auto first = timers.begin();
      const int64_t due = first->first;
      const std::string id = first->second;
      timers.erase(first);
      timers.emplace(due + 3600000, id);
    }
    set_ns = static_cast<double>(Nanos(t0, Clock::now())) / static_cast<double>(fired);
    benchmark::DoNotOptimize(timers.begin()->first);
  }
  const double fire_ns = static_cast<double>(timer_ns) / static_cast<double>(fired);
  std::printf("timers: %lld fired (%lld yellow lights, %lld other) over %lld AdvanceTo steps of 1 s\n",
              static_cast<long long>(fired), static_cast<long long>(warnings),
              static_cast<long long>(fired - warnings), static_cast<long long>(steps));
  timer_phase.End();

  // ---- 3. Commands: acknowledge, enroute, arrive, handled, verify_pass on M of the N cases, evenly spread.
  Phase command_phase("commands");
  const int64_t m = flags.command_cases;
  const double dm = static_cast<double>(m);
  std::vector<std::string> targets;
  for (int64_t k = 0; k < m; ++k) targets.push_back(ids[static_cast<size_t>(k * n / m)]);
  ingest::CommandDecoder decoder(city);
  const CaseAction stages[] = {CaseAction::kAcknowledge, CaseAction::kEnroute, CaseAction::kArrive,
                               CaseAction::kHandled, CaseAction::kVerifyPass};
  constexpr size_t kBatch = 1000;
  int64_t apply_ns_total = 0, decode_ns_total = 0, commands = 0, audit_entries = 0, records = 0;
  int64_t json_bytes = 0, offset = 0;
  std::vector<std::pair<const char*, double>> per_action;
  for (size_t stage = 0; stage < std::size(stages); ++stage) {
    std::vector<Command> cmds;
    std::vector<std::string> wire;
    cmds.reserve(targets.size());
    wire.reserve(targets.size());
    const int64_t stage_ms = last_warn + 60000 + static_cast<int64_t>(stage) * 600000;
    char buf[48];
    for (size_t k = 0; k < targets.size(); ++k) {
      Command c;
      std::snprintf(buf, sizeof buf, "cmd-%08llx-%04zu", static_cast<unsigned long long>(offset), k % 10000);
      c.command_id = buf;
      c.case_id = targets[k];
      c.action = stages[stage];
      std::snprintf(buf, sizeof buf, "op-%03zu", k % 40);
      c.actor = buf;
      c.role = Role::kOperator;
      c.ts_ms = stage_ms + static_cast<int64_t>(k) * 500000 / m;
      c.input = {"cityloop.commands", 0, offset++};
      wire.push_back(CommandJson(c));
      cmds.push_back(std::move(c));
    }
    // Baseline: the engine's own decoder over the same messages.
    int64_t decoded = 0;
    auto t0 = Clock::now();
    for (size_t k = 0; k < wire.size(); ++k) decoded += std::holds_alternative<Command>(decoder.Decode(wire[k], cmds[k].ts_ms));
    decode_ns_total += Nanos(t0, Clock::now());
    if (decoded != m) Fail("the decoder rejected generated commands");
    // Measured: OnCommand, in batches; consuming the Effects is the caller's work.
    int64_t stage_ns = 0;
    for (size_t from = 0; from < cmds.size(); from += kBatch) {
      const size_t to = std::min(cmds.size(), from + kBatch);
      std::string rejected;
      t0 = Clock::now();
      for (size_t k = from; k < to; ++k) {
        std::string r = engine->OnCommand(cmds[k], &fx);
        if (!r.empty() && rejected.empty()) rejected = r;
      }
      stage_ns += Nanos(t0, Clock::now());
      if (!rejected.empty()) Fail(std::string(CaseActionName(stages[stage])) + " rejected: " + rejected);
      audit_entries += static_cast<int64_t>(fx.audit.size());
      records += static_cast<int64_t>(fx.records.size());
      for (const auto& a : fx.audit) json_bytes += static_cast<int64_t>(a.json.size());
      for (const auto& r : fx.records) json_bytes += static_cast<int64_t>(r.value.size());
      fx.Clear();
    }
    apply_ns_total += stage_ns;
    commands += m;
    per_action.emplace_back(CaseActionName(stages[stage]), dm * 1e9 / static_cast<double>(stage_ns));
  }
  if (engine->open_count() != static_cast<size_t>(n - m)) {
    Fail(std::to_string(engine->open_count()) + " cases open after verify_pass, want " + std::to_string(n - m));
  }
  const double dcommands = static_cast<double>(commands);
  const double apply_rate = dcommands * 1e9 / static_cast<double>(apply_ns_total);
  const double decode_rate = dcommands * 1e9 / static_cast<double>(decode_ns_total);
  std::printf("commands/s by action:");
  for (const auto& [name, rate] : per_action) std::printf(" %s %.0f", name, rate);
  std::printf("\ncommand output: %.2f audit entries + %.2f records per command, %.0f bytes of JSON per command\n",
              static_cast<double>(audit_entries) / dcommands, static_cast<double>(records) / dcommands,
              static_cast<double>(json_bytes) / dcommands);
  {
    // The case snapshot every audit entry carries (Emit: WriteCaseJson without signals).
    int64_t bytes = 0;
    const auto t0 = Clock::now();
    for (const std::string& id : targets) bytes += static_cast<int64_t>(CaseJsonText(*engine->Find(id), false).size());
    const double ns = static_cast<double>(Nanos(t0, Clock::now())) / dm;
    std::printf("CaseJsonText(case, no signals): %.0f ns, %.0f bytes per case (closed, one task)\n", ns,
                static_cast<double>(bytes) / dm);
  }
  std::printf("after: %zu cases held (%zu open; closed ones are kept), RSS %.0f MiB\n", engine->case_count(),
              engine->open_count(), bench::RssMiB());
  command_phase.End();
  engine.reset();

  // ---- 4. KPI query for a month over K cases of the example city.
  Phase kpi_phase("kpi");
  auto kpi_city = Build(example);
  dispatch::KpiBook book(kpi_city->config().kpi);
  const int64_t month_ms = 1793491200000 - int64_t{utc} * 60000;  // 2026-11-01T00:00 local
  const auto fill_start = Clock::now();
  FillKpiBook(*kpi_city, flags.kpi_cases, flags.seed + 1, month_ms, &book);
  const double fill_s = Seconds(fill_start, Clock::now());
  const int64_t from_day = dispatch::LocalDay(month_ms, utc), to_day = from_day + 29;
  std::vector<double> json_ms, rows_ms, json_wall_ms;
  int64_t accepted = 0;
  size_t rows = 0, json_size = 0;
  for (int run = 0; run < 7; ++run) {
    const auto w0 = Wall::now();
    auto t0 = Clock::now();
    const nlohmann::json j = book.QueryJson(dispatch::KpiGroup::kDepartment, from_day, to_day);
    json_ms.push_back(Seconds(t0, Clock::now()) * 1e3);
    json_wall_ms.push_back(std::chrono::duration<double>(Wall::now() - w0).count() * 1e3);
    json_size = j.dump().size();
    t0 = Clock::now();
    const std::vector<dispatch::KpiRow> r = book.Query(dispatch::KpiGroup::kDepartment, from_day, to_day);
    rows_ms.push_back(Seconds(t0, Clock::now()) * 1e3);
    rows = r.size();
    accepted = 0;
    for (const auto& row : r) accepted += row.counts.accepted;
  }
  // What a month query walks: the buckets' sparse histogram bins (from their persisted form).
  // And the same bins summed per department into dense arrays: what Query's
  // merge would cost without a sorted sparse vector per row.
  int64_t bins = 0;
  double dense_ms = 0;
  {
    struct BinRef {
      uint8_t row, time, index;
      int32_t count;
    };
    std::vector<BinRef> refs;
    std::map<std::string, uint8_t> row_of;
    std::vector<std::pair<std::string, std::string>> dirty;
    book.TakeDirty(&dirty);
    for (const auto& [key, value] : dirty) {
      const size_t dept_from = key.find('/', dispatch::KpiBook::kStatePrefix.size()) + 1;
      const std::string dept = key.substr(dept_from, key.find('/', dept_from) - dept_from);
      const uint8_t row = row_of.try_emplace(dept, static_cast<uint8_t>(row_of.size())).first->second;
      const nlohmann::json bucket = nlohmann::json::parse(value);
      uint8_t time = 0;
      for (const auto& v : bucket) {
        if (!v.is_array()) continue;
        for (size_t i = 2; i + 1 < v.size(); i += 2) {
          refs.push_back({row, time, v[i].get<uint8_t>(), v[i + 1].get<int32_t>()});
        }
        ++time;
      }
    }
    bins = static_cast<int64_t>(refs.size());
    std::vector<int64_t> dense(row_of.size() * 4 * 256);
    std::vector<double> runs;
    for (int run = 0; run < 7; ++run) {
      std::fill(dense.begin(), dense.end(), 0);
      const auto t0 = Clock::now();
      for (const BinRef& b : refs) dense[(b.row * 4u + b.time) * 256u + b.index] += b.count;
      benchmark::DoNotOptimize(dense.data());
      runs.push_back(Seconds(t0, Clock::now()) * 1e3);
    }
    dense_ms = Median(runs);
  }
  if (accepted != flags.kpi_cases) Fail("the month's rows count " + std::to_string(accepted) + " cases");
  std::vector<double> scan_ms;
  {
    std::vector<CaseRow> table(static_cast<size_t>(flags.kpi_cases));
    std::mt19937_64 rng(flags.seed);
    for (CaseRow& r : table) r.closed_ms = static_cast<int64_t>(rng() >> 20);
    for (int run = 0; run < 7; ++run) {
      benchmark::ClobberMemory();
      const auto t0 = Clock::now();
      int64_t sum = 0;
      for (const CaseRow& r : table) sum += r.closed_ms;
      benchmark::DoNotOptimize(sum);
      scan_ms.push_back(Seconds(t0, Clock::now()) * 1e3);
    }
  }
  const double query_ms = Median(json_ms);
  std::printf("kpi: %lld cases -> %zu buckets in %.2f s (%.2f us per Contribute+Replace); month query: %zu rows, "
              "Query %.2f ms, QueryJson %.2f ms (wall %.2f ms, %zu bytes)\n",
              static_cast<long long>(flags.kpi_cases), book.bucket_count(), fill_s,
              fill_s * 1e6 / static_cast<double>(flags.kpi_cases), rows, Median(rows_ms), query_ms,
              Median(json_wall_ms), json_size);
  std::printf("kpi: the month's buckets hold %lld histogram bins (%.1f per bucket); Query takes %.0f ns per bucket, %.1f ns per bin; the "
              "same bins summed into dense per-department arrays: %.2f ms (%.1f ns per bin)\n",
              static_cast<long long>(bins), static_cast<double>(bins) / static_cast<double>(book.bucket_count()),
              Median(rows_ms) * 1e6 / static_cast<double>(book.bucket_count()),
              Median(rows_ms) * 1e6 / static_cast<double>(bins), dense_ms, dense_ms * 1e6 / static_cast<double>(bins));
  kpi_phase.End();

  // ---- The figures.
  std::printf("\n");
  Line("memory/open case RSS", case_rss, "B", "RSS of the Signal in vector<Signal>", signal_bytes, "<= 2048 B",
       case_rss <= 2048 ? "PASS" : "MISS");
  Line("memory/open case est", case_est, "B", "RSS of the Signal in vector<Signal>", signal_bytes, "<= 2048 B",
       case_est <= 2048 ? "PASS" : "MISS");
  Line("timer fire", fire_ns, "ns/timer", "std::set erase+insert", set_ns, "(none)", "-");
  Line("commands", apply_rate, "cmds/s", "CommandDecoder::Decode /s", decode_rate, ">= 100000/s",
       apply_rate >= 100000 ? "PASS" : "MISS");
  Line("kpi month query", query_ms, "ms", "sum of one int64 over K 64 B structs", Median(scan_ms), "< 100 ms",
       query_ms < 100 ? "PASS" : "MISS");
  return 0;
}

}  // namespace
}  // namespace cityloop

int main(int argc, char** argv) { return cityloop::Main(argc, argv); }
