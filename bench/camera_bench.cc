// camera_bench: camera analytics frames/s per core (see docs/PERFORMANCE.md).
//
// One camera with every zone detector: the example's cam-031 (kerb
// stationary, plaza crowd, its time-overlay mask) with the zones of cam-032
// (shopfront fire) and cam-034 (far-lane congestion + wrong_way, near-lane
// stationary and wrong_way) appended, so one analyzer runs stationary, crowd,
// fire, congestion, wrong_way and the tamper checks on every frame.
//
// N frames of SceneRenderer's 640x480 street (traffic 1.0, 200 ms apart,
// 5 fps) are rendered before anything is timed, with events that keep the
// detectors busy: a car parked in the kerb zone, a crowd in the plaza, a fire
// on the shopfronts, a jam in the far lane and a wrong-way car in the near
// lane. Per pass, on one thread (cv::setNumThreads(1)):
//
//   baseline  cv::imdecode(IMREAD_COLOR) of every frame (full 640x480), and
//             cv::imdecode(IMREAD_REDUCED_COLOR_2) as a second reference
//             (the analyzer decodes at that scale for analysis_width 320);
//   measured  CameraAnalyzer::Analyze over the same frames in order, on a
//             fresh analyzer each pass (it skips frames at or before its
//             newest timestamp).
//
// Then one pass for each split camera: tamper only (no zones), and each zone
// detector alone (the full set's zones that have it, with only it), to show
// where the time goes. Memory per camera two ways: MemoryBytes() after a full
// pass, and the process RSS growth for A analyzers each fed F frames, / A.
//
//   ./build/bin/camera_bench [--frames N] [--passes P] [--seed K] [--config PATH]
//                            [--analyzers A] [--feed F] [--no-split]
// Run from the project root. Exit 0 when it ran, 2 on a setup failure.
#include <malloc.h>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <unistd.h>
#include <vector>

#include "core/camera_scene.h"
#include "bench/bench_util.h"
#include "core/city.h"
#include "core/config.h"
#include "detect/camera/frame_analyzer.h"
#include "detect/camera/scene_renderer.h"

namespace cityloop {
namespace {

using detect::camera::CameraAnalyzer;
using detect::camera::EventTransition;
using detect::camera::FrameEvent;
using detect::camera::FrameOutcome;
using detect::camera::SceneRenderer;

constexpr int64_t kT0 = 1764316800000;  // 16:00 in the example city (UTC+8): daylight
constexpr int64_t kStepMs = 200;        // 5 fps, the example's camera.fps
constexpr int64_t kSec = 1000;
constexpr double kGoalFps = 250;        // per core: 50 cameras at 5 fps

struct Flags {
  int frames = 1500;  // 5 minutes at 5 fps
  int passes = 3;
  uint64_t seed = 7;
  int analyzers = 20;  // RSS growth: this many analyzers...
  int feed = 50;       // ...each fed this many frames
  bool split = true;
  std::string config = "deploy/cityloop.example.yaml";
};

[[noreturn]] void Fail(const std::string& what) { bench::Fail("camera_bench", what); }

Flags ParseFlags(int argc, char** argv) {
  Flags f;
  bench::ForEachFlag("camera_bench", argc, argv, [&](const std::string& a, auto value) {
    if (a == "--frames") f.frames = std::stoi(value());
    else if (a == "--passes") f.passes = std::stoi(value());
    else if (a == "--seed") f.seed = std::stoull(value());
    else if (a == "--analyzers") f.analyzers = std::stoi(value());
    else if (a == "--feed") f.feed = std::stoi(value());
    else if (a == "--no-split") f.split = false;
    else if (a == "--config") f.config = value();
    else return false;
    return true;
  });
  if (f.frames < 1 || f.passes < 1 || f.analyzers < 1 || f.feed < 1) Fail("counts must be positive");
  return f;
}

using bench::RssMiB;

using Clock = std::chrono::steady_clock;
double Seconds(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); }

double ThreadCpuSeconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

struct Timing {
  double wall_s = 0;
  double cpu_s = 0;  // this thread's CPU time: what the frames cost a core even on a busy machine
};

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

const CameraZone* ZoneOf(const Camera& cam, const std::string& id) {
  for (const CameraZone& z : cam.zones) {
    if (z.id == id) return &z;
  }
  return nullptr;
}

// The bench cameras, added to the example city: "bench-full" (every zone
// detector), "bench-tamper" (no zones) and "bench-<detector>" (each alone).
std::shared_ptr<const CityModel> BenchCity(const Flags& flags) {
  ConfigLoadResult loaded = LoadConfigFile(flags.config);
  if (!loaded.config) Fail("config " + flags.config + ": " + (loaded.errors.empty() ? "" : loaded.errors[0].ToString()));
  Config c = *loaded.config;
  const auto find = [&](const std::string& id) -> const Camera& {
    for (const Camera& cam : c.city.cameras) {
      if (cam.id == id) return cam;
    }
    Fail("config " + flags.config + " has no camera " + id);
  };
  Camera full = find("cam-031");
  full.id = "bench-full";
  full.name = "bench: cam-031 + the zones of cam-032 and cam-034";
  for (const char* other : {"cam-032", "cam-034"}) {
    for (CameraZone z : find(other).zones) {
      while (ZoneOf(full, z.id)) z.id += "-" + std::string(other);  // zone ids stay unique
      full.zones.push_back(std::move(z));
    }
  }
  std::set<ZoneDetector> kinds;
  for (const CameraZone& z : full.zones) kinds.insert(z.detectors.begin(), z.detectors.end());
  for (ZoneDetector d : {ZoneDetector::kStationary, ZoneDetector::kCrowd, ZoneDetector::kFire,
                         ZoneDetector::kCongestion, ZoneDetector::kWrongWay}) {
    if (!kinds.count(d)) Fail(std::string("the bench camera has no ") + ZoneDetectorName(d) + " zone");
  }
  Camera tamper = full;
  tamper.id = "bench-tamper";
  tamper.zones.clear();
  std::vector<Camera> add = {full, tamper};
  for (ZoneDetector d : kinds) {
    Camera one = tamper;
    one.id = std::string("bench-") + ZoneDetectorName(d);
    for (CameraZone z : full.zones) {
      if (std::find(z.detectors.begin(), z.detectors.end(), d) == z.detectors.end()) continue;
      z.detectors = {d};
      one.zones.push_back(std::move(z));
    }
    add.push_back(std::move(one));
  }
  for (Camera& cam : add) c.city.cameras.push_back(std::move(cam));
  auto city = CityModel::Build(c);
  if (!city.ok()) Fail("city: " + city.status().ToString());
  return *city;
}

// The frames, rendered up front: the events start after the analyzer's
// warm-up (25 frames = 5 s) and overlap, so from ~1 min on most detectors have
// something in their zone, and the stationary, crowd, fire, congestion and
// wrong_way events all START within the default 1500 frames. The wrong-way
// car comes after the jam: at 250 s, during the jam, none was detected.
std::vector<std::string> RenderFrames(const Flags& flags) {
  SceneSpec spec;
  spec.camera_id = "bench-full";
  spec.seed = flags.seed;
  spec.width = 640;
  spec.height = 480;
  spec.traffic = 1.0;
  const SceneRenderer renderer(spec);
  const std::vector<SceneEvent> events = {
      {SceneEventKind::kParkedCar, {0.08, 0.75, 0.14, 0.10}, kT0 + 15 * kSec, kT0 + 240 * kSec},
      {SceneEventKind::kCrowd, {0.36, 0.70, 0.58, 0.28}, kT0 + 30 * kSec, kT0 + 210 * kSec},
      {SceneEventKind::kFire, {0.44, 0.14, 0.12, 0.16}, kT0 + 60 * kSec, kT0 + 150 * kSec},
      {SceneEventKind::kTrafficJam, {0.0, 0.47, 1.0, 0.16}, kT0 + 90 * kSec, kT0 + 270 * kSec},
      {SceneEventKind::kWrongWay, {0.30, 0.66, 0.70, 0.18}, kT0 + 280 * kSec, kT0 + 290 * kSec},
  };
  std::vector<std::string> frames;
  frames.reserve(static_cast<size_t>(flags.frames));
  for (int i = 0; i < flags.frames; ++i) frames.push_back(renderer.RenderJpeg(kT0 + i * kStepMs, events));
  return frames;
}

cv::Mat Wrap(const std::string& jpeg) {
  return cv::Mat(1, static_cast<int>(jpeg.size()), CV_8U, const_cast<char*>(jpeg.data()));
}

// The baseline: decode every frame, nothing else.
Timing Decode(const std::vector<std::string>& frames, int flag, double* checksum) {
  double sum = 0;
  const double cpu0 = ThreadCpuSeconds();
  const auto start = Clock::now();
  for (const std::string& jpeg : frames) {
    const cv::Mat img = cv::imdecode(Wrap(jpeg), flag);
    if (img.empty()) Fail("a rendered frame did not decode");
    sum += img.at<cv::Vec3b>(img.rows / 2, img.cols / 2)[1];
  }
  Timing t{Seconds(start, Clock::now()), ThreadCpuSeconds() - cpu0};
  *checksum += sum;
  return t;
}

struct RunResult {
  Timing timing;
  int64_t analysed = 0;
  size_t memory_bytes = 0;
  std::map<std::string, int> starts;  // detector -> START transitions
  int events = 0;
};

// A fresh analyzer over every frame in order.
RunResult Analyze(const Camera& camera, const CityModel& city, const std::vector<std::string>& frames) {
  CameraAnalyzer analyzer(camera, city.config().camera, city.config().city.utc_offset_minutes);
  std::vector<FrameEvent> events;
  RunResult r;
  int rejected = 0;
  const double cpu0 = ThreadCpuSeconds();
  const auto start = Clock::now();
  for (size_t i = 0; i < frames.size(); ++i) {
    rejected += analyzer.Analyze(frames[i], kT0 + static_cast<int64_t>(i) * kStepMs, &events).outcome !=
                FrameOutcome::kAnalysed;
  }
  r.timing = {Seconds(start, Clock::now()), ThreadCpuSeconds() - cpu0};
  if (rejected) Fail(std::to_string(rejected) + " frames were not analysed on " + camera.id);
  r.analysed = analyzer.frames_analysed();
  r.memory_bytes = analyzer.MemoryBytes();
  r.events = static_cast<int>(events.size());
  for (const FrameEvent& e : events) {
    if (e.transition.kind == EventTransition::Kind::kStart) ++r.starts[e.detector];
  }
  return r;
}

std::string Starts(const RunResult& r) {
  std::string s;
  for (const auto& [detector, n] : r.starts) s += (s.empty() ? "" : ", ") + detector + " " + std::to_string(n);
  return s.empty() ? "none" : s;
}

int Main(int argc, char** argv) {
  const Flags flags = ParseFlags(argc, argv);
  cv::setNumThreads(1);  // per core: no OpenCV worker threads, for the baseline and the measured alike
  auto city = BenchCity(flags);
  const Camera& full = *city->FindCamera("bench-full");
  std::printf("camera_bench: %d frames 640x480 (%.0f s at 5 fps), %d passes, camera bench-full with %zu zones:",
              flags.frames, static_cast<double>(flags.frames) * kStepMs / 1000, flags.passes, full.zones.size());
  for (const CameraZone& z : full.zones) {
    std::printf(" %s[", z.id.c_str());
    for (size_t i = 0; i < z.detectors.size(); ++i) std::printf("%s%s", i ? "," : "", ZoneDetectorName(z.detectors[i]));
    std::printf("]");
  }
  std::printf(" + tamper; OpenCV %s, %d thread\n", CV_VERSION, cv::getNumThreads());

  const auto render_start = Clock::now();
  const std::vector<std::string> frames = RenderFrames(flags);
  size_t jpeg_bytes = 0;
  for (const std::string& f : frames) jpeg_bytes += f.size();
  std::printf("rendered in %.1f s (not timed), mean JPEG %.1f KiB\n", Seconds(render_start, Clock::now()),
              static_cast<double>(jpeg_bytes) / static_cast<double>(frames.size()) / 1024);

  // Memory per camera, measured as RSS growth before the timed passes leave
  // freed heap behind: one analyzer first pays the one-time costs (OpenCV's
  // statics, the HOG detector) and stays alive; the heap is trimmed; then A
  // analyzers are fed F frames each and kept.
  const std::vector<std::string> feed(frames.begin(), frames.begin() + std::min<size_t>(frames.size(), static_cast<size_t>(flags.feed)));
  std::vector<FrameEvent> scratch;
  const auto fill = [&](CameraAnalyzer& a) {
    for (size_t i = 0; i < feed.size(); ++i) a.Analyze(feed[i], kT0 + static_cast<int64_t>(i) * kStepMs, &scratch);
  };
  double rss_per_camera = 0, memory_after_feed = 0;
  {
    CameraAnalyzer first(full, city->config().camera, city->config().city.utc_offset_minutes);
    fill(first);
    malloc_trim(0);
    const double rss0 = RssMiB();
    std::vector<std::unique_ptr<CameraAnalyzer>> many;
    for (int i = 0; i < flags.analyzers; ++i) {
      many.push_back(std::make_unique<CameraAnalyzer>(full, city->config().camera, city->config().city.utc_offset_minutes));
      fill(*many.back());
      memory_after_feed += static_cast<double>(many.back()->MemoryBytes());
    }
    rss_per_camera = (RssMiB() - rss0) * 1024 / flags.analyzers;  // KiB
    memory_after_feed /= flags.analyzers;
  }

  std::printf("\n%-5s %14s %14s %14s %10s %10s %8s %8s\n", "pass", "decode full/s", "decode 1/2/s", "analyzer/s",
              "/full", "/reduced", "cpu f/s", "RSS MiB");
  double checksum = 0;
  std::vector<double> full_fps, reduced_fps, analyzer_fps, analyzer_cpu_fps, ratio_full, ratio_reduced;
  RunResult last;
  const double n = static_cast<double>(frames.size());
  for (int pass = 0; pass < flags.passes; ++pass) {
    const Timing dec_full = Decode(frames, cv::IMREAD_COLOR, &checksum);
    const Timing dec_half = Decode(frames, cv::IMREAD_REDUCED_COLOR_2, &checksum);
    last = Analyze(full, *city, frames);
    if (last.analysed != static_cast<int64_t>(frames.size())) Fail("the analyzer skipped frames");
    full_fps.push_back(n / dec_full.wall_s);
    reduced_fps.push_back(n / dec_half.wall_s);
    analyzer_fps.push_back(n / last.timing.wall_s);
    analyzer_cpu_fps.push_back(n / last.timing.cpu_s);
    ratio_full.push_back(analyzer_fps.back() / full_fps.back());
    ratio_reduced.push_back(analyzer_fps.back() / reduced_fps.back());
    std::printf("%-5d %14.0f %14.0f %14.1f %10.4f %10.4f %8.1f %8.1f\n", pass + 1, full_fps.back(), reduced_fps.back(),
                analyzer_fps.back(), ratio_full.back(), ratio_reduced.back(), analyzer_cpu_fps.back(), RssMiB());
  }
  const double best = *std::max_element(analyzer_fps.begin(), analyzer_fps.end());
  const size_t best_i = static_cast<size_t>(std::max_element(analyzer_fps.begin(), analyzer_fps.end()) - analyzer_fps.begin());
  const double median = Median(analyzer_fps);
  std::printf("\nbare decode, full 640x480:   best %.0f, median %.0f frames/s (%.2f ms/frame)\n",
              *std::max_element(full_fps.begin(), full_fps.end()), Median(full_fps), 1000 / Median(full_fps));
  std::printf("bare decode, reduced 1/2:    best %.0f, median %.0f frames/s (%.2f ms/frame)\n",
              *std::max_element(reduced_fps.begin(), reduced_fps.end()), Median(reduced_fps), 1000 / Median(reduced_fps));
  std::printf("analyzer, full detector set: best %.1f, median %.1f frames/s (%.2f ms/frame median; CPU-time best %.1f)\n",
              best, median, 1000 / median, *std::max_element(analyzer_cpu_fps.begin(), analyzer_cpu_fps.end()));
  std::printf("ratio analyzer / bare full decode: %.4f (best pass), %.4f (median)\n", ratio_full[best_i], Median(ratio_full));
  std::printf("ratio analyzer / reduced decode:   %.4f (best pass), %.4f (median)\n", ratio_reduced[best_i],
              Median(ratio_reduced));
  std::printf("goal %.0f frames/s per core: %s (best %.1f, median %.1f)\n", kGoalFps, best >= kGoalFps ? "met" : "missed",
              best, median);
  std::printf("cameras at 5 fps per core: %.1f (best), %.1f (median); goal 50\n", best / 5, median / 5);
  std::printf("events per pass: %d transitions; STARTs: %s\n", last.events, Starts(last).c_str());
  std::printf("memory per camera: MemoryBytes() %.0f KiB after %d frames, %.0f KiB after %d frames; "
              "RSS growth %.0f KiB per analyzer (%d analyzers x %zu frames)\n",
              static_cast<double>(last.memory_bytes) / 1024, flags.frames, memory_after_feed / 1024, flags.feed,
              rss_per_camera, flags.analyzers, feed.size());

  if (flags.split) {
    // Where the time goes: one pass each, tamper only, then each detector
    // alone; the increments are in this thread's CPU time, which a busy
    // machine disturbs less than the wall clock.
    std::printf("\nsplit (one pass each, same frames; cpu = this thread's CPU time):\n%-20s %9s %9s %9s %13s  %s\n",
                "camera", "frames/s", "ms/frame", "cpu ms", "+cpu ms", "STARTs");
    const RunResult tamper = Analyze(*city->FindCamera("bench-tamper"), *city, frames);
    const double tamper_cpu_ms = 1000 * tamper.timing.cpu_s / n;
    const auto row = [&](const std::string& name, const RunResult& r, bool increment) {
      const double cpu_ms = 1000 * r.timing.cpu_s / n;
      char inc[32] = "";
      if (increment) std::snprintf(inc, sizeof inc, "%+.2f", cpu_ms - tamper_cpu_ms);
      std::printf("%-20s %9.1f %9.2f %9.2f %13s  %s\n", name.c_str(), n / r.timing.wall_s, 1000 * r.timing.wall_s / n,
                  cpu_ms, inc, Starts(r).c_str());
    };
    row("full set (last pass)", last, true);
    row("tamper only", tamper, false);
    for (const Camera& cam : city->config().city.cameras) {
      if (cam.id.rfind("bench-", 0) != 0 || cam.id == "bench-full" || cam.id == "bench-tamper") continue;
      row(cam.id.substr(6) + " only", Analyze(cam, *city, frames), true);
    }
    std::printf("decode at 1/2 (inside every row): %.2f ms/frame (median pass)\n", 1000 / Median(reduced_fps));
  }
  std::printf("[checksum %.0f]\n", checksum);
  return 0;
}

}  // namespace
}  // namespace cityloop

int main(int argc, char** argv) { return cityloop::Main(argc, argv); }
