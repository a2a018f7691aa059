#include "detect/camera/edge_zones.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <limits>

#include "detect/camera/camera_signals.h"
#include "detect/camera/zone_geometry.h"

namespace cityloop::detect::camera {
namespace {

ImageBox BoxOf(const CameraDetection& d) { return {d.bbox[0], d.bbox[1], d.bbox[2], d.bbox[3]}; }

bool LabelCounts(const std::vector<std::string>& labels, const std::string& label) {
  return labels.empty() || std::find(labels.begin(), labels.end(), label) != labels.end();
}

// "1 object", "3 objects".
std::string Counted(double n, const char* one, const char* many) {
  const long long k = std::llround(n);
  return std::to_string(k) + " " + (k == 1 ? one : many);
}

const char* AlarmName(LineDirection d) {
  switch (d) {
    case LineDirection::kAToB: return "a_to_b";
    case LineDirection::kBToA: return "b_to_a";
    case LineDirection::kBoth: break;
  }
  return "either way";
}

// Reads the space-separated fields TakeDirty writes; every read fails on
// anything else.
class Cursor {
 public:
  explicit Cursor(std::string_view s) : s_(s) {}
  bool Int(int64_t* v) {
    Skip();
    const auto [end, ec] = std::from_chars(s_.data(), s_.data() + s_.size(), *v);
    if (ec != std::errc{}) return false;
    s_.remove_prefix(static_cast<size_t>(end - s_.data()));
    return true;
  }
  bool Num(double* v) {
    Skip();
    const auto [end, ec] = std::from_chars(s_.data(), s_.data() + s_.size(), *v);
    if (ec != std::errc{} || !std::isfinite(*v)) return false;
    s_.remove_prefix(static_cast<size_t>(end - s_.data()));
    return true;
  }
  // One space, then exactly n bytes (a track id may hold any byte).
  bool Bytes(size_t n, std::string* out) {
    if (s_.size() < n + 1 || s_[0] != ' ') return false;
    out->assign(s_.substr(1, n));
    s_.remove_prefix(n + 1);
    return true;
  }
  std::string_view rest() const { return s_; }
  bool AtEnd() {
    Skip();
    return s_.empty();
  }

 private:
  void Skip() {
    while (!s_.empty() && (s_[0] == ' ' || s_[0] == '\n')) s_.remove_prefix(1);
  }
  std::string_view s_;
};

}  // namespace

EdgeZoneTracker::EdgeZoneTracker(const CityModel& city, const Camera& camera)
    : city_(city), camera_(camera), prefix_(StatePrefix(camera.id)) {
  const CameraOptions& opt = city.config().camera;
  for (const CameraZone& zone : camera.zones) {
    for (ZoneDetector d : zone.detectors) {
      int64_t dwell = 0;
      switch (d) {
        case ZoneDetector::kIntrusion: dwell = zone.dwell_ms.value_or(0); break;
        case ZoneDetector::kStationary: dwell = zone.dwell_ms.value_or(opt.stationary_dwell_ms); break;
        case ZoneDetector::kCrowd: dwell = zone.dwell_ms.value_or(opt.crowd_dwell_ms); break;
        default: continue;  // needs pixels: frame analytics only
      }
      const bool twice = std::any_of(zones_.begin(), zones_.end(),
                                     [&](const ZoneEvent& z) { return z.zone == &zone && z.detector == d; });
      if (twice) continue;
      ZoneEvent z;
      z.zone = &zone;
      z.detector = d;
      z.category = ZoneCategory(zone, opt, ZoneDetectorName(d));
      z.times.dwell_ms = dwell;
      z.times.cooldown_ms = opt.cooldown_ms;
      z.times.pending_gap_ms = kPendingGapMs;
      z.key = prefix_ + "z/" + zone.id + "/" + ZoneDetectorName(d);
      z.stored = z.life.Encode();
      zones_.push_back(std::move(z));
    }
  }
  for (const CameraLine& line : camera.lines) {
    LineEvent l;
    l.line = &line;
    l.times.dwell_ms = 0;
    l.times.cooldown_ms = opt.cooldown_ms;
    l.times.pending_gap_ms = kPendingGapMs;
    l.key = prefix_ + "l/" + line.id;
    counts_[line.id] = LineCount{};
    l.stored = EncodeLine(l);
    lines_.push_back(std::move(l));
  }
  tracks_stored_ = EncodeTracks();
}

std::string EdgeZoneTracker::StatePrefix(std::string_view camera_id) {
  return "edge/" + std::string(camera_id) + "/";
}

void EdgeZoneTracker::OnDetections(const CameraDetections& d, std::vector<Signal>* out) {
  if (d.camera_id != camera_.id || (has_ts_ && d.ts_ms <= last_ts_)) return;
  has_ts_ = true;
  last_ts_ = d.ts_ms;
  DropStaleTracks(d.ts_ms);
  const std::vector<Seen> seen = UpdateTracks(d);
  const Origin origin{d.input, d.ingest_ms};
  for (ZoneEvent& z : zones_) ObserveZone(z, seen, d.ts_ms, origin, out);
  for (LineEvent& l : lines_) ObserveLine(l, seen, d.ts_ms, origin, out);
}

void EdgeZoneTracker::Expire(int64_t now_ms, std::vector<Signal>* out) {
  DropStaleTracks(now_ms);
  const Origin none;
  for (ZoneEvent& z : zones_) EmitZone(z, z.life.Expire(now_ms, z.times), none, out);
  for (LineEvent& l : lines_) {
    if (!l.line->category.empty()) EmitLine(l, l.life.Expire(now_ms, l.times), none, out);
  }
}

void EdgeZoneTracker::DropStaleTracks(int64_t now_ms) {
  std::erase_if(tracks_, [&](const auto& kv) { return now_ms - kv.second.seen_ms > kTrackTtlMs; });
}

std::vector<EdgeZoneTracker::Seen> EdgeZoneTracker::UpdateTracks(const CameraDetections& d) {
  std::vector<Seen> seen;
  seen.reserve(d.detections.size());
  for (const CameraDetection& det : d.detections) {
    if (det.score < kMinScore) continue;
    Seen s;
    s.det = &det;
    s.foot = FootPoint(BoxOf(det));
    if (!det.track_id.empty()) {
      s.tracked = true;
      auto it = tracks_.find(det.track_id);
      if (it == tracks_.end()) {
        if (tracks_.size() >= kMaxTracks) {
          tracks_.erase(std::min_element(tracks_.begin(), tracks_.end(), [](const auto& x, const auto& y) {
            return x.second.seen_ms < y.second.seen_ms;
          }));
        }
        it = tracks_.emplace(det.track_id, Track{s.foot, s.foot, d.ts_ms, d.ts_ms}).first;
      } else {
        Track& t = it->second;
        s.has_prev = true;
        s.prev = t.last;
        if (std::hypot(s.foot[0] - t.stop[0], s.foot[1] - t.stop[1]) > kStillRadius) {
          t.stop = s.foot;
          t.stop_ms = d.ts_ms;
        }
        t.last = s.foot;
        t.seen_ms = d.ts_ms;
      }
      s.stop_ms = it->second.stop_ms;
    }
    seen.push_back(s);
  }
  return seen;
}

bool EdgeZoneTracker::ZoneCounts(const CameraZone& zone, const Seen& s) const {
  if (!LabelCounts(zone.labels, s.det->label) || !InPolygon(zone.polygon, s.foot)) return false;
  return std::none_of(camera_.masks.begin(), camera_.masks.end(),
                      [&](const ImagePolygon& m) { return InPolygon(m, s.foot); });
}

void EdgeZoneTracker::ObserveZone(ZoneEvent& z, const std::vector<Seen>& seen, int64_t ts_ms, const Origin& o,
                                  std::vector<Signal>* out) {
  const CameraZone& zone = *z.zone;
  std::vector<const Seen*> in;
  if (ZoneArmed(zone, ts_ms, city_.config().city.utc_offset_minutes)) {
    for (const Seen& s : seen) {
      if (ZoneCounts(zone, s)) in.push_back(&s);
    }
  }
  Evidence e;
  int64_t stopped_since = 0;  // stationary: the earliest stop of a stationary track
  switch (z.detector) {
    case ZoneDetector::kIntrusion: {
      double largest = -1;
      for (const Seen* s : in) {
        const double area = s->det->bbox[2] * s->det->bbox[3];
        if (area > largest) {
          largest = area;
          e.box = BoxOf(*s->det);
        }
      }
      e.present = !in.empty();
      e.value = static_cast<double>(in.size());
      break;
    }
    case ZoneDetector::kStationary:
      for (const Seen* s : in) {
        if (!s->tracked || s->stop_ms >= ts_ms) continue;  // not yet seen still twice
        if (!e.present || s->stop_ms < stopped_since) {
          stopped_since = s->stop_ms;
          e.box = BoxOf(*s->det);
        }
        e.present = true;
      }
      if (e.present) e.value = static_cast<double>(ts_ms - stopped_since) / 1000.0;
      break;
    case ZoneDetector::kCrowd: {
      int people = 0;
      double x0 = 1, y0 = 1, x1 = 0, y1 = 0;
      for (const Seen* s : in) {
        if (s->det->label != "person") continue;
        ++people;
        const double* b = s->det->bbox;
        x0 = std::min(x0, b[0]);
        y0 = std::min(y0, b[1]);
        x1 = std::max(x1, b[0] + b[2]);
        y1 = std::max(y1, b[1] + b[3]);
      }
      e.present = people >= std::max(1, city_.config().camera.crowd_min_people);
      e.value = people;
      if (e.present) e.box = {x0, y0, x1 - x0, y1 - y0};
      break;
    }
    default: return;
  }
  if (!e.present) {
    EmitZone(z, z.life.Observe(ts_ms, e, z.times), o, out);
    return;
  }
  EmitZone(z, z.life.Expire(ts_ms, z.times), o, out);
  if (z.detector == ZoneDetector::kStationary) {
    // The dwell counts from the stop, not from the first message that showed it.
    const bool restart = z.life.phase() == EventLifecycle::Phase::kPending && z.life.start_ms() < stopped_since;
    if (z.life.phase() == EventLifecycle::Phase::kIdle || restart) {
      // An ended episode's start must not come back: it names the event.
      const bool after_last = restart || stopped_since > z.life.last_evidence_ms();
      z.life = EventLifecycle();
      if (z.times.dwell_ms > 0 && after_last && ts_ms - stopped_since <= z.times.pending_gap_ms) {
        z.life.Observe(stopped_since, {true, 0, e.box}, z.times);  // pending: dwell_ms > 0
      }
    }
  }
  EmitZone(z, z.life.Observe(ts_ms, e, z.times), o, out);
}

void EdgeZoneTracker::ObserveLine(LineEvent& l, const std::vector<Seen>& seen, int64_t ts_ms, const Origin& o,
                                  std::vector<Signal>* out) {
  const CameraLine& line = *l.line;
  LineCount& count = counts_[line.id];
  int64_t alarms = 0;
  ImageBox box{};
  for (const Seen& s : seen) {
    if (!s.has_prev || !LabelCounts(line.labels, s.det->label)) continue;
    if (!CrossesSegment(line.a, line.b, s.prev, s.foot)) continue;
    const bool a_to_b = SideOfLine(line.a, line.b, s.prev) < 0 && SideOfLine(line.a, line.b, s.foot) > 0;
    ++(a_to_b ? count.a_to_b : count.b_to_a);
    if (line.alarm == LineDirection::kBoth || (line.alarm == LineDirection::kAToB) == a_to_b) {
      ++alarms;
      box = BoxOf(*s.det);
    }
  }
  if (line.category.empty()) return;
  if (alarms == 0) {
    EmitLine(l, l.life.Observe(ts_ms, Evidence{}, l.times), o, out);
    return;
  }
  EmitLine(l, l.life.Expire(ts_ms, l.times), o, out);
  if (!l.life.active()) l.episode = 0;
  l.episode += alarms;
  EmitLine(l, l.life.Observe(ts_ms, {true, static_cast<double>(l.episode), box}, l.times), o, out);
}

void EdgeZoneTracker::EmitZone(const ZoneEvent& z, const std::optional<EventTransition>& t, const Origin& o,
                               std::vector<Signal>* out) const {
  if (!t) return;
  const CameraEventSource src{&camera_, z.zone->id, ZoneDetectorName(z.detector), z.category, o.input, o.ingest_ms};
  std::string what, text;
  switch (z.detector) {
    case ZoneDetector::kStationary: {
      const std::vector<std::string>& labels = z.zone->labels;
      what = "a stationary " + (labels.size() == 1 ? labels[0] : std::string("object"));
      text = "stationary " + std::to_string(std::llround(t->value)) + " s";
      break;
    }
    case ZoneDetector::kCrowd:
      what = "a crowd of " + std::to_string(std::llround(t->value));
      text = Counted(t->value, "person", "people");
      break;
    default:
      what = "an object in the zone";
      text = Counted(t->value, "object", "objects");
      break;
  }
  out->push_back(CameraEventSignal(city_, src, *t, what, text));
}

void EdgeZoneTracker::EmitLine(const LineEvent& l, const std::optional<EventTransition>& t, const Origin& o,
                               std::vector<Signal>* out) const {
  if (!t) return;
  const CameraEventSource src{&camera_, l.line->id, "line", l.line->category, o.input, o.ingest_ms};
  const std::string text = Counted(t->value, "crossing ", "crossings ") + AlarmName(l.line->alarm);
  out->push_back(CameraEventSignal(city_, src, *t, "line crossings", text));
}

std::string EdgeZoneTracker::EncodeLine(const LineEvent& l) const {
  const LineCount& c = counts_.at(l.line->id);
  return std::to_string(c.a_to_b) + " " + std::to_string(c.b_to_a) + " " + std::to_string(l.episode) + " " +
         l.life.Encode();
}

// "<has_ts> <last_ts> <n>\n" then per track
// "<id bytes> <id> <last x> <last y> <stop x> <stop y> <stop_ms> <seen_ms>\n".
std::string EdgeZoneTracker::EncodeTracks() const {
  std::string s = std::to_string(has_ts_ ? 1 : 0) + " " + std::to_string(last_ts_) + " " +
                  std::to_string(tracks_.size()) + "\n";
  for (const auto& [id, t] : tracks_) {
    char buf[160];
    std::snprintf(buf, sizeof buf, " %.17g %.17g %.17g %.17g %lld %lld\n", t.last[0], t.last[1], t.stop[0],
                  t.stop[1], static_cast<long long>(t.stop_ms), static_cast<long long>(t.seen_ms));
    s.append(std::to_string(id.size())).append(" ").append(id).append(buf);
  }
  return s;
}

bool EdgeZoneTracker::DecodeTracks(std::string_view text) {
  Cursor c(text);
  int64_t has_ts = 0, last_ts = 0, n = 0;
  if (!c.Int(&has_ts) || !c.Int(&last_ts) || !c.Int(&n) || has_ts < 0 || has_ts > 1 || n < 0 ||
      n > static_cast<int64_t>(kMaxTracks)) {
    return false;
  }
  std::map<std::string, Track> tracks;
  for (int64_t i = 0; i < n; ++i) {
    int64_t len = 0;
    std::string id;
    Track t;
    if (!c.Int(&len) || len <= 0 || !c.Bytes(static_cast<size_t>(len), &id) || !c.Num(&t.last[0]) ||
        !c.Num(&t.last[1]) || !c.Num(&t.stop[0]) || !c.Num(&t.stop[1]) || !c.Int(&t.stop_ms) || !c.Int(&t.seen_ms) ||
        !tracks.emplace(std::move(id), t).second) {
      return false;
    }
  }
  if (!c.AtEnd()) return false;
  has_ts_ = has_ts == 1;
  last_ts_ = last_ts;
  tracks_ = std::move(tracks);
  return true;
}

std::vector<StateEntry> EdgeZoneTracker::TakeDirty() {
  std::vector<StateEntry> out;
  auto put = [&](const std::string& key, std::string value, std::string& stored) {
    if (value == stored) return;
    stored = value;
    out.push_back({key, std::move(value)});
  };
  for (ZoneEvent& z : zones_) put(z.key, z.life.Encode(), z.stored);
  for (LineEvent& l : lines_) put(l.key, EncodeLine(l), l.stored);
  put(prefix_ + "t", EncodeTracks(), tracks_stored_);
  return out;
}

void EdgeZoneTracker::Restore(std::string_view key, std::string_view value) {
  if (key == prefix_ + "t") {
    if (DecodeTracks(value)) tracks_stored_ = EncodeTracks();
    return;
  }
  for (ZoneEvent& z : zones_) {
    if (key != z.key) continue;
    if (auto life = EventLifecycle::Decode(value)) {
      z.life = *life;
      z.stored = z.life.Encode();
    }
    return;
  }
  for (LineEvent& l : lines_) {
    if (key != l.key) continue;
    Cursor c(value);
    LineCount count;
    int64_t episode = 0;
    if (!c.Int(&count.a_to_b) || !c.Int(&count.b_to_a) || !c.Int(&episode) || count.a_to_b < 0 ||
        count.b_to_a < 0 || episode < 0) {
      return;
    }
    auto life = EventLifecycle::Decode(c.rest());
    if (!life) return;
    counts_[l.line->id] = count;
    l.episode = episode;
    l.life = *life;
    l.stored = EncodeLine(l);
    return;
  }
}

}  // namespace cityloop::detect::camera
