#include "detect/camera/camera_analytics.h"

#include <algorithm>
#include <sstream>
#include <utility>

#include "detect/camera/camera_signals.h"
#include "detect/camera/edge_zones.h"

namespace cityloop::detect::camera {

namespace {
constexpr std::string_view kSnapshotIndexPrefix = "snapidx/";
}

CameraAnalytics::CameraAnalytics(std::shared_ptr<const CityModel> city) : city_(std::move(city)) {}
CameraAnalytics::~CameraAnalytics() = default;

CameraAnalyzer& CameraAnalytics::AnalyzerFor(const Camera& camera) {
  auto it = analyzers_.find(camera.id);
  if (it != analyzers_.end()) return *it->second.analyzer;
  const Config& cfg = city_->config();
  Analysed a;
  a.analyzer = std::make_unique<CameraAnalyzer>(camera, cfg.camera, cfg.city.utc_offset_minutes);
  return *analyzers_.emplace(camera.id, std::move(a)).first->second.analyzer;
}

EdgeZoneTracker* CameraAnalytics::TrackerFor(const Camera& camera) {
  if (camera.zones.empty() && camera.lines.empty()) return nullptr;
  auto it = trackers_.find(camera.id);
  if (it != trackers_.end()) return it->second.tracker.get();
  Tracked t;
  t.tracker = std::make_unique<EdgeZoneTracker>(*city_, camera);
  return trackers_.emplace(camera.id, std::move(t)).first->second.tracker.get();
}

std::string CameraAnalytics::Keep(const Camera& camera, const std::string& id, int64_t ts_ms, std::string jpeg) {
  const CameraOptions& opt = city_->config().camera;
  SnapshotIndex& index = snapshot_index_[camera.id];
  index.kept.emplace_back(ts_ms, id);
  index.dirty = true;
  new_snapshots_.push_back({id, camera.id, ts_ms, std::move(jpeg)});
  auto& kept = index.kept;
  size_t drop = kept.size() > static_cast<size_t>(opt.snapshots_per_camera)
                    ? kept.size() - static_cast<size_t>(opt.snapshots_per_camera)
                    : 0;
  while (drop < kept.size() && kept[drop].first < ts_ms - opt.snapshot_max_age_ms) ++drop;
  for (size_t i = 0; i < drop; ++i) dropped_snapshots_.push_back(kept[i].second);
  kept.erase(kept.begin(), kept.begin() + static_cast<std::ptrdiff_t>(drop));
  return id;
}

void CameraAnalytics::ToSignals(const Camera& camera, std::vector<FrameEvent>& events, const InputRef& input,
                                int64_t ingest_ms, std::vector<Signal>* out) {
  for (FrameEvent& ev : events) {
    if (ev.category.empty()) continue;
    CameraEventSource src{&camera, ev.zone, ev.detector, ev.category, input, ingest_ms};
    Signal s = CameraEventSignal(*city_, src, ev.transition, ev.what, ev.value_text);
    for (auto& [k, v] : ev.attributes) s.attributes.emplace(k, v);
    const std::string base = s.attributes["event_id"] + ":" + TransitionName(ev.transition.kind);
    if (!ev.snapshot_jpeg.empty()) {
      s.attributes["snapshot"] = Keep(camera, base, ev.transition.ts_ms, std::move(ev.snapshot_jpeg));
    }
    if (!ev.annotated_jpeg.empty()) {
      s.attributes["snapshot_annotated"] =
          Keep(camera, base + ":annotated", ev.transition.ts_ms, std::move(ev.annotated_jpeg));
    }
    out->push_back(std::move(s));
  }
  events.clear();
}

FrameResult CameraAnalytics::OnFrame(const CameraFrame& frame, uint16_t source, std::vector<Signal>* out) {
  const Camera* camera = city_->FindCamera(frame.camera_id);
  if (!camera) return {FrameOutcome::kRejected, "unknown_camera", "camera '" + frame.camera_id + "' is not registered"};
  CameraAnalyzer& analyzer = AnalyzerFor(*camera);
  analyzers_[camera->id].source = source;
  scratch_.clear();
  FrameResult r = analyzer.Analyze(frame.jpeg, frame.ts_ms, &scratch_);
  switch (r.outcome) {
    case FrameOutcome::kAnalysed: ++stats_.analysed; break;
    case FrameOutcome::kSkippedRate: ++stats_.skipped_rate; break;
    case FrameOutcome::kSkippedOld: ++stats_.skipped_old; break;
    case FrameOutcome::kRejected: ++stats_.rejected; break;
  }
  ToSignals(*camera, scratch_, frame.input, frame.ingest_ms, out);
  return r;
}

void CameraAnalytics::OnDetections(const CameraDetections& d, uint16_t source, std::vector<Signal>* out) {
  const Camera* camera = city_->FindCamera(d.camera_id);
  if (!camera) return;
  EdgeZoneTracker* t = TrackerFor(*camera);
  if (!t) return;
  trackers_[camera->id].source = source;
  t->OnDetections(d, out);
}

void CameraAnalytics::Expire(const std::function<int64_t(uint16_t)>& watermark_of, std::vector<Signal>* out) {
  for (auto& [id, a] : analyzers_) {
    scratch_.clear();
    a.analyzer->Expire(watermark_of(a.source), &scratch_);
    ToSignals(*city_->FindCamera(id), scratch_, {}, 0, out);
  }
  for (auto& [id, t] : trackers_) t.tracker->Expire(watermark_of(t.source), out);
}

std::vector<SnapshotRecord> CameraAnalytics::TakeSnapshots() { return std::exchange(new_snapshots_, {}); }
std::vector<std::string> CameraAnalytics::TakeDroppedSnapshots() { return std::exchange(dropped_snapshots_, {}); }

std::vector<std::string> CameraAnalytics::StatePrefixes() {
  return {"camf/", "edge/", std::string(kSnapshotIndexPrefix)};
}

void CameraAnalytics::TakeDirty(std::vector<StateEntry>* out) {
  for (auto& [id, a] : analyzers_) {
    for (auto& e : a.analyzer->TakeDirty()) out->push_back(std::move(e));
  }
  for (auto& [id, t] : trackers_) {
    for (auto& e : t.tracker->TakeDirty()) out->push_back(std::move(e));
  }
  for (auto& [camera, index] : snapshot_index_) {
    if (!index.dirty) continue;
    index.dirty = false;
    std::string v;
    for (const auto& [ts, id] : index.kept) v += std::to_string(ts) + ' ' + id + '\n';
    out->push_back({std::string(kSnapshotIndexPrefix) + camera, std::move(v)});
  }
}

void CameraAnalytics::Restore(std::string_view key, std::string_view value) {
  // Every key is <prefix><camera id>[/...]; state of a camera no longer
  // configured is ignored (and overwritten or left behind harmlessly).
  for (const std::string& prefix : StatePrefixes()) {
    if (key.substr(0, prefix.size()) != prefix) continue;
    const std::string_view rest = key.substr(prefix.size());
    const Camera* camera = city_->FindCamera(rest.substr(0, rest.find('/')));
    if (!camera) return;
    if (prefix == kSnapshotIndexPrefix) {
      SnapshotIndex& index = snapshot_index_[camera->id];
      std::istringstream is{std::string(value)};
      long long ts = 0;
      std::string id;
      while (is >> ts >> id) index.kept.emplace_back(ts, id);
    } else if (prefix == "camf/") {
      AnalyzerFor(*camera).Restore(key, value);
    } else if (EdgeZoneTracker* t = TrackerFor(*camera)) {
      t->Restore(key, value);
    }
    return;
  }
}

int64_t CameraAnalytics::recalibrations() const {
  int64_t n = 0;
  for (const auto& [id, a] : analyzers_) n += a.analyzer->recalibrations();
  return n;
}

size_t CameraAnalytics::MemoryBytes() const {
  size_t n = 0;
  for (const auto& [id, a] : analyzers_) n += a.analyzer->MemoryBytes();
  return n;
}

}  // namespace cityloop::detect::camera
