// Camera frames (city.camera.frames) end to end on the embedded broker and a
// real Engine:
//   - bad frames (corrupt, truncated, empty, oversized, unknown or missing
//     camera, missing or bad ts, a PNG) are dead-lettered with their reason,
//     and the good frames and sensor readings after them are still processed;
//     the counters say so on /metrics;
//   - a rendered scene of a car parking in a no-parking zone opens an
//     illegal_parking case whose signal names its snapshots, and the snapshots
//     are served by GET /api/v1/snapshots/{id} as 640x480 JPEGs.
// The HTTP server is the console's, with the routes the `run` command wires
// (console::OperationalRoutes + console::AddSnapshotRoutes on the engine's
// store), started in-process: a `run` child logs its --listen address as
// given, so a test could not learn the port it picked.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <atomic>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "app/engine.h"
#include "console/http_server.h"
#include "core/camera_scene.h"
#include "core/city.h"
#include "core/clock.h"
#include "core/time_util.h"
#include "detect/camera/frame_analyzer.h"
#include "detect/camera/scene_renderer.h"
#include "ingest/broker.h"
#include "ingest/kafka.h"
#include "ingest/sensor_decoder.h"
#include "tests/support/http_get.h"
#include "tests/support/pipeline_support.h"
#include "tests/support/test_support.h"

namespace cityloop {
namespace {

using nlohmann::json;
using testing::HttpGet;
using testing::HttpReply;
using testing::MetricValue;
using testing::OfType;
using testing::ParseValues;
using testing::ReadTopic;
namespace reason = ingest::reason;

constexpr int64_t kSec = 1000;
// The engine clock (a ManualClock: the engine runs live, so frames more than
// camera.max_lag behind it would be dropped as overload; max_lag is 1h here).
const int64_t kNow = *ParseRfc3339Ms("2026-12-01T10:00:00+08:00");

constexpr int64_t kMaxFrameBytes = 200000;
constexpr size_t kMaxDeadLetterValue = 256 * 1024;  // app/pipeline.cc

// One camera with a no-parking kerb zone (drawn against the renderer's
// street), one gas sensor with a threshold rule, and the catalogue the camera
// detectors raise.
std::string TestConfigYaml() {
  return R"(camera:
  max_frame_bytes: )" + std::to_string(kMaxFrameBytes) + R"(
  max_lag: 1h
city:
  utc_offset: "+08:00"
  grid: {origin: {lat: 28.17, lon: 112.95}, cell_size_m: 500, rows: 2, cols: 2}
  districts:
    - id: furong
      code: "430102"
      default_department: city_management
      streets:
        - id: s1
          code: "001"
          communities:
            - {id: c1, code: "001", rows: [0, 1], cols: [0, 1]}
  departments:
    - {id: city_management}
    - {id: gas}
  catalogue:
    - {id: illegal_parking, department: city_management}
    - {id: road_obstacle, department: city_management}
    - {id: crowd_gathering, department: city_management}
    - {id: traffic_congestion, department: city_management}
    - {id: wrong_way_driving, department: city_management}
    - {id: fire_candidate, department: city_management, confirm: true}
    - {id: zone_intrusion, department: city_management}
    - {id: camera_fault, department: city_management}
    - {id: gas_leak, department: gas, priority: urgent}
  devices:
    - {id: gas-0001, kind: gas_ppm, lat: 28.1712, lon: 112.9512}
  cameras:
    - id: cam-031
      lat: 28.171
      lon: 112.951
      zones:
        - id: kerb
          polygon: [[0.02, 0.66], [0.28, 0.66], [0.28, 0.86], [0.02, 0.86]]
          detectors: [stationary]
          category: illegal_parking
          min_area: 0.006
          dwell: 10s
rules:
  - {id: gas-leak, kind: threshold, sensor: gas_ppm, category: gas_leak, above: 500, clear: 300, for: 10s}
)";
}

// --- fixture --------------------------------------------------------------------

class CameraFrames : public ::testing::Test {
 protected:
  void SetUp() override {
    config_path_ = dir_.file("cityloop.yaml");
    testing::WriteFile(config_path_, TestConfigYaml());
    ConfigLoadResult loaded = LoadConfigFile(config_path_);
    ASSERT_TRUE(loaded.config) << (loaded.errors.empty() ? "" : loaded.errors[0].ToString());
    auto city = CityModel::Build(*loaded.config);
    ASSERT_TRUE(city.ok()) << city.status().ToString();
    city_ = *city;
    ASSERT_EQ(city_->config().camera.max_frame_bytes, kMaxFrameBytes);
    ASSERT_EQ(city_->config().camera.max_lag_ms, 3600 * kSec);
    auto broker = ingest::EmbeddedBroker::Start(ingest::BrokerOptionsFor(city_->config().kafka));
    ASSERT_TRUE(broker.ok()) << broker.status().ToString();
    broker_ = std::move(broker).value();
    ingest::ProducerOptions po;
    po.bootstrap = broker_->bootstrap();
    po.client_id = "camera-frames-test";
    auto producer = ingest::KafkaProducer::Create(po, [this](uint64_t, const Status& st) {
      if (!st.ok()) ++delivery_errors_;
    });
    ASSERT_TRUE(producer.ok()) << producer.status().ToString();
    producer_ = std::move(producer).value();
  }

  const TopicNames& topics() const { return city_->config().kafka.topics; }

  // Frames all go to partition 0, in the order produced.
  void SendFrame(const std::string& key, const std::string& jpeg, const ingest::Headers& headers) {
    ASSERT_TRUE(producer_->Produce(topics().camera_frames, key, jpeg, headers, 0, 0).ok());
  }

  static ingest::Headers FrameHeaders(int64_t ts, const std::string& camera = "cam-031") {
    return {{"camera_id", camera}, {"ts", std::to_string(ts)}, {"content-type", "image/jpeg"}};
  }

  app::EngineOptions Options(bool exit_when_caught_up) const {
    app::EngineOptions eo;
    eo.bootstrap = broker_->bootstrap();
    eo.store_path = dir_.file("store");
    eo.exit_when_caught_up = exit_when_caught_up;
    return eo;
  }

  // Runs the engine over everything produced, until caught up. The engine
  // stays alive (for the HTTP routes on its store) until the fixture ends.
  void RunEngine() {
    ASSERT_TRUE(producer_->Flush(30000).ok());
    ASSERT_EQ(delivery_errors_.load(), 0);
    auto engine = app::Engine::Create(city_, Options(true), clock_, &metrics_);
    ASSERT_TRUE(engine.ok()) << engine.status().ToString();
    engine_ = std::move(engine).value();
    std::atomic<bool> stop{false};
    ASSERT_TRUE(engine_->Run(stop).ok());
  }

  // Starts the engine on a thread of its own, running until StopEngine.
  void StartEngine() {
    auto engine = app::Engine::Create(city_, Options(false), clock_, &metrics_);
    ASSERT_TRUE(engine.ok()) << engine.status().ToString();
    engine_ = std::move(engine).value();
    engine_thread_ = std::thread([this] { engine_status_ = engine_->Run(stop_); });
  }
  Status StopEngine() {
    stop_.store(true);
    if (engine_thread_.joinable()) engine_thread_.join();
    return engine_status_;
  }
  void TearDown() override { EXPECT_TRUE(StopEngine().ok()); }

  // The console's HTTP server with the routes `cityloop run` wires.
  void StartHttp() {
    ASSERT_NE(engine_, nullptr);
    app::Engine* eng = engine_.get();
    auto routes = console::OperationalRoutes(metrics_, [eng] { return eng->ready(); });
    console::AddSnapshotRoutes(routes, [eng](const std::string& id) { return eng->store().GetSnapshot(id); });
    auto http = console::HttpServer::Start("127.0.0.1:0", std::move(routes));
    ASSERT_TRUE(http.ok()) << http.status().ToString();
    http_ = std::move(http).value();
  }

  testing::TempDir dir_;
  std::string config_path_;
  std::shared_ptr<const CityModel> city_;
  std::unique_ptr<ingest::EmbeddedBroker> broker_;
  std::unique_ptr<ingest::KafkaProducer> producer_;
  std::atomic<int> delivery_errors_{0};
  ManualClock clock_{kNow};
  MetricsRegistry metrics_;
  std::unique_ptr<app::Engine> engine_;
  std::atomic<bool> stop_{false};
  std::thread engine_thread_;
  Status engine_status_;
  std::unique_ptr<console::HttpServer> http_;
};

detect::camera::SceneRenderer& Renderer() {
  static detect::camera::SceneRenderer renderer([] {
    SceneSpec s;
    s.camera_id = "cam-031";
    s.seed = 7;
    return s;
  }());
  return renderer;
}

struct BadFrame {
  std::string name;
  std::string value;
  ingest::Headers headers;
  std::string expect;  // x-error-code
};

TEST_F(CameraFrames, BadFramesAreDeadLetteredWithTheirReasonAndTheStreamGoesOn) {
  // Event time: bad frames from t0, then good ones, 200 ms apart (5 fps: no
  // frame is skipped for the rate, none is out of order).
  const int64_t t0 = kNow - 30 * kSec;
  int64_t ts = t0;
  auto next = [&] { return ts += 200; };
  const std::string good = Renderer().RenderJpeg(t0, {});
  ASSERT_LT(good.size(), static_cast<size_t>(kMaxFrameBytes));
  int w = 0, h = 0;
  ASSERT_TRUE(detect::camera::JpegDimensions(good, &w, &h));
  ASSERT_EQ(w, 640);
  ASSERT_EQ(h, 480);
  // A real PNG signature and IHDR (1x1), then nothing of use.
  const std::string png = std::string("\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR\0\0\0\x01\0\0\0\x01\x08\x02\0\0\0\x90wS\xde", 33);
  // Over camera.max_frame_bytes and over the 256 KiB a DLQ record keeps; and just over the limit.
  std::string huge = good;
  huge.resize(300000, '\0');
  std::string over = good;
  over.resize(static_cast<size_t>(kMaxFrameBytes) + 1, '\0');
  ASSERT_GT(huge.size(), kMaxDeadLetterValue);
  ASSERT_LT(over.size(), kMaxDeadLetterValue);

  std::vector<BadFrame> bad = {
      {"corrupt bytes", "these are not the bytes of a jpeg", FrameHeaders(next()), "corrupt_jpeg"},
      {"JPEG signature then garbage", std::string("\xff\xd8\xff", 3) + std::string(500, 'g'), FrameHeaders(next()),
       "corrupt_jpeg"},
      {"truncated JPEG", good.substr(0, good.size() / 2), FrameHeaders(next()), "truncated_jpeg"},
      {"empty value", "", FrameHeaders(next()), reason::kEmptyMessage},
      {"oversized, over 256 KiB", huge, FrameHeaders(next()), reason::kOversized},
      {"oversized by one byte", over, FrameHeaders(next()), reason::kOversized},
      {"unknown camera_id", good, FrameHeaders(next(), "cam-999"), reason::kUnknownCamera},
      {"missing camera_id header", good, {{"ts", std::to_string(next())}}, reason::kMissingHeader},
      {"missing ts header", good, {{"camera_id", "cam-031"}}, reason::kMissingHeader},
      {"non-integer ts", good, {{"camera_id", "cam-031"}, {"ts", "10:00:00"}}, reason::kBadTimestamp},
      {"ts an hour ahead", good, FrameHeaders(kNow + 3600 * kSec), reason::kFutureTimestamp},
      {"a PNG, said so", png, {{"camera_id", "cam-031"}, {"ts", std::to_string(next())}, {"content-type", "image/png"}},
       reason::kUnsupportedContent},
      {"a PNG, unlabelled", png, {{"camera_id", "cam-031"}, {"ts", std::to_string(next())}}, "corrupt_jpeg"},
  };
  for (size_t i = 0; i < bad.size(); ++i) SendFrame("bad-" + std::to_string(i), bad[i].value, bad[i].headers);
  // Then good frames of an empty street: analysed.
  constexpr int kGood = 30;
  for (int i = 0; i < kGood; ++i) {
    const int64_t t = next();
    SendFrame("cam-031", Renderer().RenderJpeg(t, {}), i % 2 ? FrameHeaders(t) : ingest::Headers{
                                                                                     {"ts", std::to_string(t)},
                                                                                     {"camera_id", "cam-031"}});
  }
  // And a gas leak on city.sensors: above 500 ppm for more than the rule's 10 s.
  for (int64_t t = kNow - 25 * kSec; t <= kNow - 5 * kSec; t += 5 * kSec) {
    char buf[160];
    std::snprintf(buf, sizeof buf, R"({"device_id":"gas-0001","kind":"gas_ppm","ts":%lld,"value":900.0})",
                  static_cast<long long>(t));
    ASSERT_TRUE(producer_->Produce(topics().sensors, "gas-0001", buf).ok());
  }
  RunEngine();
  ASSERT_NE(engine_, nullptr);

  // Where each frame landed.
  std::map<std::string, ingest::Message> produced;
  for (auto& m : ReadTopic(broker_->bootstrap(), topics().camera_frames)) {
    if (m.key.rfind("bad-", 0) == 0) produced.emplace(m.key, std::move(m));
  }
  ASSERT_EQ(produced.size(), bad.size());

  // The DLQ: each bad frame once, with its reason, its source and (up to 256 KiB) its bytes.
  std::map<std::string, const ingest::Message*> dlq_by_key;
  const auto dlq = ReadTopic(broker_->bootstrap(), topics().dlq);
  for (const auto& m : dlq) EXPECT_TRUE(dlq_by_key.emplace(m.key, &m).second) << "dead-lettered twice: " << m.key;
  EXPECT_EQ(dlq.size(), bad.size()) << "only the bad frames are dead-lettered";
  std::map<std::string, int64_t> by_reason;
  for (size_t i = 0; i < bad.size(); ++i) {
    const BadFrame& b = bad[i];
    SCOPED_TRACE(b.name);
    ++by_reason[b.expect];
    auto it = dlq_by_key.find("bad-" + std::to_string(i));
    if (it == dlq_by_key.end()) {
      ADD_FAILURE() << "not in the DLQ; expected " << b.expect;
      continue;
    }
    const ingest::Message& d = *it->second;
    const std::string* code = d.header("x-error-code");
    const std::string* error = d.header("x-error");
    const std::string* topic = d.header("x-source-topic");
    const std::string* offset = d.header("x-source-offset");
    const std::string* partition = d.header("x-source-partition");
    if (!code || !error || !topic || !offset || !partition) {
      ADD_FAILURE() << "missing DLQ headers";
      continue;
    }
    EXPECT_EQ(*code, b.expect) << "x-error: " << *error;
    EXPECT_EQ(error->rfind(b.expect + ": ", 0), 0u) << *error;
    EXPECT_GT(error->size(), b.expect.size() + 2) << "a detail after the reason";
    EXPECT_EQ(*topic, topics().camera_frames);
    EXPECT_EQ(*partition, "0");
    EXPECT_EQ(*offset, std::to_string(produced.at(it->first).offset));
    const std::string* omitted = d.header("x-value-omitted-bytes");
    if (b.value.size() > kMaxDeadLetterValue) {
      EXPECT_TRUE(d.value.empty()) << d.value.size() << " value bytes in the DLQ record";
      ASSERT_NE(omitted, nullptr);
      EXPECT_EQ(*omitted, std::to_string(b.value.size()));
    } else {
      EXPECT_EQ(omitted, nullptr);
      EXPECT_TRUE(d.value == b.value) << "DLQ value differs from the original (" << d.value.size() << " vs "
                                      << b.value.size() << " bytes)";
    }
  }

  // The stream went on: the sensor readings after the bad frames opened the gas-leak case.
  const auto opened = OfType(ParseValues(ReadTopic(broker_->bootstrap(), topics().cases)), "city.case.opened");
  ASSERT_EQ(opened.size(), 1u);
  EXPECT_EQ(opened[0]["data"]["category"], "gas_leak") << opened[0].dump();
  EXPECT_EQ(opened[0]["data"]["signal"]["device_id"], "gas-0001") << opened[0].dump();

  // Counters, from the registry and as /metrics serves them.
  const int64_t rejected = static_cast<int64_t>(bad.size());
  EXPECT_EQ(metrics_.CounterTotal("cityloop_camera_frames_total", {{"outcome", "rejected"}}), rejected);
  EXPECT_EQ(metrics_.CounterTotal("cityloop_camera_frames_total", {{"outcome", "analysed"}}), kGood);
  EXPECT_EQ(metrics_.CounterTotal("cityloop_camera_frames_total", {{"outcome", "overload"}}), 0);
  EXPECT_EQ(metrics_.CounterTotal("cityloop_camera_frames_total", {{"outcome", "skipped_rate"}}), 0);
  EXPECT_EQ(metrics_.CounterTotal("cityloop_camera_frames_total", {{"outcome", "skipped_old"}}), 0);
  EXPECT_EQ(metrics_.CounterTotal("cityloop_ingest_rejected_total", {{"topic", topics().camera_frames}}),
            rejected);
  EXPECT_EQ(metrics_.CounterTotal("cityloop_ingest_rejected_total"), rejected);
  for (const auto& [code, n] : by_reason) {
    EXPECT_EQ(metrics_.CounterTotal("cityloop_ingest_rejected_total", {{"reason", code}}), n) << code;
  }
  EXPECT_EQ(metrics_.CounterTotal("cityloop_ingest_accepted_total"), kGood + 5);
  EXPECT_EQ(metrics_.CounterTotal("cityloop_camera_snapshots_stored_total"), 0) << "an empty street raises nothing";

  StartHttp();
  const HttpReply m = HttpGet(http_->port(), "/metrics");
  ASSERT_EQ(m.status, 200) << m.body;
  EXPECT_EQ(MetricValue(m.body, R"(cityloop_camera_frames_total{outcome="rejected"})"), rejected) << m.body;
  EXPECT_EQ(MetricValue(m.body, R"(cityloop_camera_frames_total{outcome="analysed"})"), kGood) << m.body;
  EXPECT_EQ(MetricValue(m.body, R"(cityloop_camera_frames_total{outcome="overload"})"), 0) << m.body;
  EXPECT_NE(m.body.find("cityloop_ingest_rejected_total{reason=\"corrupt_jpeg\""), std::string::npos) << m.body;
}

TEST_F(CameraFrames, AParkedCarOpensACaseWhoseSnapshotsAreServed) {
  // 70 s of city time at 5 fps, ending at the engine clock. The car drives
  // into the kerb zone at +20 s and stays; the zone's dwell is 10 s.
  // The scene starts 70 s before the engine clock (this start once lost the
  // car to the ghost check: FrameAnalyzer.ParkedCarIsFoundWhateverTheTimeOfDay).
  const int64_t t0 = kNow - 70 * kSec;
  clock_.set_ms(t0 + 70 * kSec);
  const int64_t now = clock_.now_ms();
  const SceneBox kerb{0.08, 0.75, 0.14, 0.10};
  const std::vector<SceneEvent> events = {{SceneEventKind::kParkedCar, kerb, t0 + 20 * kSec, t0 + 600 * kSec}};
  // The embedded broker keeps only a few MB per partition (ingest/broker.h)
  // and a frame is tens of KB: the engine runs alongside, and each chunk of
  // frames is produced once it has analysed the one before.
  StartEngine();
  ASSERT_NE(engine_, nullptr);
  auto analysed = [&] { return metrics_.CounterTotal("cityloop_camera_frames_total", {{"outcome", "analysed"}}); };
  int64_t frames = 0;
  for (int64_t t = t0; t < now; t += 200) {
    SendFrame("cam-031", Renderer().RenderJpeg(t, events), FrameHeaders(t));
    if (++frames % 25 == 0 || t + 200 >= now) {
      ASSERT_TRUE(producer_->Flush(30000).ok());
      ASSERT_EQ(delivery_errors_.load(), 0);
      ASSERT_TRUE(testing::WaitFor([&] { return analysed() >= frames; }))
          << analysed() << " of " << frames << " frames analysed\n"
          << metrics_.RenderPrometheus();
    }
  }
  auto opened_events = [&] {
    return OfType(ParseValues(ReadTopic(broker_->bootstrap(), topics().cases)), "city.case.opened");
  };
  ASSERT_TRUE(testing::WaitFor([&] { return !opened_events().empty(); }, std::chrono::seconds(20)))
      << "no case opened\n"
      << metrics_.RenderPrometheus();
  ASSERT_TRUE(StopEngine().ok());
  EXPECT_EQ(analysed(), frames) << metrics_.RenderPrometheus();
  EXPECT_EQ(metrics_.CounterTotal("cityloop_camera_frames_total", {{"outcome", "overload"}}), 0);
  EXPECT_EQ(metrics_.CounterTotal("cityloop_camera_frames_total", {{"outcome", "rejected"}}), 0);
  EXPECT_TRUE(ReadTopic(broker_->bootstrap(), topics().dlq).empty());

  const auto events_out = ParseValues(ReadTopic(broker_->bootstrap(), topics().cases));
  const auto opened = OfType(events_out, "city.case.opened");
  ASSERT_EQ(opened.size(), 1u) << "one illegal-parking case";
  const json& data = opened[0]["data"];
  EXPECT_EQ(data["category"], "illegal_parking") << opened[0].dump();
  EXPECT_EQ(data["department"], "city_management");
  const json& signal = data["signal"];
  EXPECT_EQ(signal["source"], "camera") << signal.dump();
  EXPECT_EQ(signal["device_id"], "cam-031");
  const json& attrs = signal["attributes"];
  EXPECT_EQ(attrs["zone"], "kerb") << attrs.dump();
  EXPECT_EQ(attrs["detector"], "stationary");
  ASSERT_TRUE(attrs.contains("snapshot")) << attrs.dump();
  ASSERT_TRUE(attrs.contains("snapshot_annotated")) << attrs.dump();
  const std::string snapshot = attrs["snapshot"], annotated = attrs["snapshot_annotated"];
  EXPECT_NE(snapshot, annotated);
  // Still from about when it stopped (the drive-in takes 4 s), raised after
  // the 10 s dwell, within 15 s of the car having stopped and the dwell.
  ASSERT_TRUE(signal.contains("fired")) << signal.dump();
  const int64_t fired = signal["fired"].get<int64_t>(), since = signal["ts"].get<int64_t>();
  EXPECT_GE(since, t0 + 20 * kSec) << signal.dump();
  EXPECT_LE(since, t0 + 30 * kSec) << signal.dump();
  EXPECT_GE(fired - since, 10 * kSec) << signal.dump();
  EXPECT_GE(fired, t0 + 30 * kSec) << signal.dump();
  EXPECT_LE(fired, t0 + 49 * kSec) << signal.dump();

  // Both in the store, and counted.
  std::set<std::string> stored;
  ASSERT_TRUE(engine_->store()
                  .ForEachSnapshot("", [&](std::string_view id, std::string_view) {
                    stored.insert(std::string(id));
                    return true;
                  })
                  .ok());
  EXPECT_TRUE(stored.count(snapshot)) << snapshot;
  EXPECT_TRUE(stored.count(annotated)) << annotated;
  EXPECT_EQ(metrics_.CounterTotal("cityloop_camera_snapshots_stored_total"), static_cast<int64_t>(stored.size()));

  // Served over HTTP as 640x480 JPEGs that decode.
  StartHttp();
  const Camera& camera = *city_->FindCamera("cam-031");
  for (const std::string& id : {snapshot, annotated}) {
    SCOPED_TRACE(id);
    HttpReply r = HttpGet(http_->port(), "/api/v1/snapshots/" + id);
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(r.headers["content-type"], "image/jpeg");
    auto in_store = engine_->store().GetSnapshot(id);
    ASSERT_TRUE(in_store.ok());
    ASSERT_TRUE(in_store->has_value());
    EXPECT_TRUE(r.body == **in_store) << "served bytes differ from the stored ones";
    int w = 0, h = 0;
    ASSERT_TRUE(detect::camera::JpegDimensions(r.body, &w, &h));
    EXPECT_EQ(w, 640);
    EXPECT_EQ(h, 480);
    // A fresh analyzer decodes it (it rejects what OpenCV cannot decode).
    detect::camera::CameraAnalyzer analyzer(camera, city_->config().camera, city_->config().city.utc_offset_minutes);
    std::vector<detect::camera::FrameEvent> ignored;
    const detect::camera::FrameResult fr = analyzer.Analyze(r.body, now, &ignored);
    EXPECT_EQ(fr.outcome, detect::camera::FrameOutcome::kAnalysed) << fr.reason << ": " << fr.detail;
  }
  HttpReply missing = HttpGet(http_->port(), "/api/v1/snapshots/cam-031:kerb:stationary:1:start");
  EXPECT_EQ(missing.status, 404);
  EXPECT_NE(missing.headers["content-type"].find("application/json"), std::string::npos);
  const json err = json::parse(missing.body, nullptr, false);
  ASSERT_TRUE(err.is_object()) << missing.body;
  EXPECT_TRUE(err["error"].contains("code")) << missing.body;
  EXPECT_TRUE(err["error"].contains("message")) << missing.body;
}

}  // namespace
}  // namespace cityloop
