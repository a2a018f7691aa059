#include "detect/camera/edge_zones.h"

#include <gtest/gtest.h>

#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "core/city.h"
#include "core/config.h"

namespace cityloop::detect::camera {
namespace {

constexpr int64_t kT0 = 1764316800000;  // 2025-11-28T08:00Z, 16:00 in the city (UTC+8)
constexpr int64_t kSec = 1000;
constexpr int64_t kMin = 60000;

// One camera, the frame split in three zones and a counting line:
//   square (upper half)        crowd, 3 people for 20 s
//   yard (lower left)          intrusion for 10 s, armed 08-20 local, a mask in its bottom-left corner
//   kerb (lower right)         stationary vehicles for 60 s
//   gate (x = 0.5, top to bottom)  persons; left-to-right (a_to_b) crossings raise
constexpr const char* kCity = R"(city:
  utc_offset: "+08:00"
  grid: {origin: {lat: 28.17, lon: 112.95}, cell_size_m: 500, rows: 2, cols: 2}
  districts:
    - id: furong
      name: Furong
      code: "430102"
      default_department: city_management
      streets:
        - id: dingwangtai
          code: "001"
          communities:
            - {id: west, code: "001", rows: [0, 1], cols: [0, 0]}
            - {id: east, code: "002", rows: [0, 1], cols: [1, 1]}
  departments:
    - {id: city_management, name: City management}
  catalogue:
    - {id: zone_intrusion, department: city_management, priority: high}
    - {id: illegal_parking, department: city_management}
    - {id: crowd_gathering, department: city_management}
    - {id: gate_crossing, department: city_management, priority: low}
    - {id: camera_fault, department: city_management, priority: low}
  cameras:
    - id: cam-031
      lat: 28.171
      lon: 112.951
      masks: [[[0.0, 0.8], [0.15, 0.8], [0.15, 1.0], [0.0, 1.0]]]
      zones:
        - {id: square, polygon: [[0, 0], [1, 0], [1, 0.5], [0, 0.5]], detectors: [crowd]}
        - {id: yard, polygon: [[0, 0.5], [0.5, 0.5], [0.5, 1], [0, 1]], detectors: [intrusion], dwell: 10s,
           schedule: [8, 20]}
        - {id: kerb, polygon: [[0.5, 0.5], [1, 0.5], [1, 1], [0.5, 1]], detectors: [stationary], labels: [vehicle]}
      lines:
        - {id: gate, from: [0.5, 0], to: [0.5, 1], labels: [person], category: gate_crossing, alarm: a_to_b}
camera:
  cooldown: 15s
  stationary: {dwell: 60s}
  crowd: {dwell: 20s, min_people: 3}
)";

std::shared_ptr<const CityModel> BuildCity() {
  auto loaded = LoadConfigText(kCity, "edge.yaml");
  if (!loaded.config) {
    std::string errors;
    for (const auto& e : loaded.errors) errors += e.ToString() + "\n";
    throw std::runtime_error(errors);
  }
  auto city = CityModel::Build(*loaded.config);
  if (!city.ok()) throw std::runtime_error(city.status().ToString());
  return std::move(city).value();
}

// A detection standing at foot point (x, y).
struct Det {
  Det(std::string l, double fx, double fy, std::string t = "", double sc = 0.9, double sz = 0.1)
      : label(std::move(l)), x(fx), y(fy), track(std::move(t)), score(sc), size(sz) {}
  std::string label;
  double x, y;
  std::string track;
  double score;
  double size;
};

const std::string& Phase(const Signal& s) { return s.attributes.at("phase"); }

// Everything a downstream stage sees of a signal, for comparing two runs.
std::string Describe(const Signal& s) {
  std::string out = s.id + " | " + s.follows + " | " + s.category + " | " + std::to_string(s.ts_ms) + " | " +
                    std::to_string(s.fired_ms) + " | " + std::to_string(s.value) + " | " + s.explanation;
  for (const auto& [k, v] : s.attributes) out += " | " + k + "=" + v;
  return out;
}
std::vector<std::string> Describe(const std::vector<Signal>& signals) {
  std::vector<std::string> out;
  for (const Signal& s : signals) out.push_back(Describe(s));
  return out;
}

class EdgeZoneTest : public ::testing::Test {
 protected:
  EdgeZoneTest() : city_(BuildCity()), tracker_(NewTracker()) {}

  std::unique_ptr<EdgeZoneTracker> NewTracker() const {
    return std::make_unique<EdgeZoneTracker>(*city_, *city_->FindCamera("cam-031"));
  }

  CameraDetections Message(int64_t ts, const std::vector<Det>& dets) {
    CameraDetections d;
    d.camera_id = "cam-031";
    d.ts_ms = ts;
    d.position = city_->FindCamera("cam-031")->position;
    d.cell = city_->CellAt(d.position)->index;
    d.input = {"city.camera.detections", 1, offset_++};
    d.ingest_ms = ts + 40;
    for (const Det& x : dets) {
      d.detections.push_back({x.label, x.score, {x.x - x.size / 2, x.y - x.size, x.size, x.size}, x.track});
    }
    return d;
  }
  std::vector<Signal> See(int64_t ts, const std::vector<Det>& dets, EdgeZoneTracker* t = nullptr) {
    std::vector<Signal> out;
    (t ? t : tracker_.get())->OnDetections(Message(ts, dets), &out);
    return out;
  }
  std::vector<Signal> Expire(int64_t now, EdgeZoneTracker* t = nullptr) {
    std::vector<Signal> out;
    (t ? t : tracker_.get())->Expire(now, &out);
    return out;
  }
  // Messages every second over [from, to) seconds after kT0; the signals they raise.
  std::vector<Signal> Run(int from, int to, const std::vector<Det>& dets, EdgeZoneTracker* t = nullptr) {
    std::vector<Signal> out;
    for (int i = from; i < to; ++i) {
      auto s = See(kT0 + i * kSec, dets, t);
      out.insert(out.end(), s.begin(), s.end());
    }
    return out;
  }

  std::shared_ptr<const CityModel> city_;
  std::unique_ptr<EdgeZoneTracker> tracker_;
  int64_t offset_ = 0;
};

const Det kIntruder{"person", 0.3, 0.7};

TEST_F(EdgeZoneTest, IntrusionStartsAfterTheDwellNotBefore) {
  EXPECT_TRUE(Run(0, 10, {kIntruder}).empty());
  const Det small{"dog", 0.2, 0.6, "", 0.8, 0.05};
  auto s = See(kT0 + 10 * kSec, {kIntruder, small});
  ASSERT_EQ(s.size(), 1u);
  EXPECT_EQ(Phase(s[0]), "start");
  EXPECT_EQ(s[0].id, "cam-031:yard:intrusion:" + std::to_string(kT0));
  EXPECT_TRUE(s[0].follows.empty());
  EXPECT_EQ(s[0].category, "zone_intrusion");
  EXPECT_EQ(s[0].priority, Priority::kHigh);
  EXPECT_EQ(s[0].source, SignalSource::kCamera);
  EXPECT_EQ(s[0].device_id, "cam-031");
  EXPECT_EQ(s[0].rule_id, "camera.intrusion");
  EXPECT_EQ(s[0].attributes.at("zone"), "yard");
  EXPECT_EQ(s[0].ts_ms, kT0);
  EXPECT_EQ(s[0].fired_ms, kT0 + 10 * kSec);
  EXPECT_EQ(s[0].ingest_ms, kT0 + 10 * kSec + 40);
  EXPECT_EQ(s[0].input.offset, 10);
  EXPECT_DOUBLE_EQ(s[0].value, 2);
  EXPECT_EQ(s[0].attributes.at("box"), "[0.250, 0.600, 0.100, 0.100]");  // the larger one
  EXPECT_NE(s[0].explanation.find("an object in the zone for 10s (2 objects)"), std::string::npos)
      << s[0].explanation;
  // Still there: no second START.
  EXPECT_TRUE(Run(11, 30, {kIntruder}).empty());
}

TEST_F(EdgeZoneTest, IntrusionEndsAfterTheCooldownOnAnEmptyMessage) {
  ASSERT_EQ(Run(0, 11, {kIntruder}).size(), 1u);
  const std::string start_id = "cam-031:yard:intrusion:" + std::to_string(kT0);
  EXPECT_TRUE(Run(11, 25, {}).empty());  // last evidence at 10 s, cooldown 15 s
  auto s = See(kT0 + 25 * kSec, {});
  ASSERT_EQ(s.size(), 1u);
  EXPECT_EQ(Phase(s[0]), "end");
  EXPECT_EQ(s[0].follows, start_id);
  EXPECT_EQ(s[0].attributes.at("event_id"), start_id);
  EXPECT_EQ(s[0].fired_ms, kT0 + 10 * kSec);
  EXPECT_EQ(s[0].attributes.at("duration_s"), "10");
  // A new intruder is a new event.
  EXPECT_TRUE(Run(30, 40, {kIntruder}).empty());
  s = See(kT0 + 40 * kSec, {kIntruder});
  ASSERT_EQ(s.size(), 1u);
  EXPECT_EQ(s[0].id, "cam-031:yard:intrusion:" + std::to_string(kT0 + 30 * kSec));
}

TEST_F(EdgeZoneTest, IntrusionEndsAfterTheCooldownOnExpire) {
  ASSERT_EQ(Run(0, 11, {kIntruder}).size(), 1u);
  EXPECT_TRUE(Expire(kT0 + 24 * kSec).empty());
  auto s = Expire(kT0 + 25 * kSec);
  ASSERT_EQ(s.size(), 1u);
  EXPECT_EQ(Phase(s[0]), "end");
  EXPECT_EQ(s[0].follows, "cam-031:yard:intrusion:" + std::to_string(kT0));
  EXPECT_EQ(s[0].input.offset, -1);  // no message made it
  EXPECT_TRUE(Expire(kT0 + 60 * kSec).empty());
}

TEST_F(EdgeZoneTest, MaskedUnarmedAndLowScoreDetectionsAreIgnored) {
  EXPECT_TRUE(Run(0, 30, {{"person", 0.05, 0.9}}).empty());  // in the yard, but in the mask
  EXPECT_TRUE(Run(30, 60, {{"person", 0.3, 0.7, "", 0.45}}).empty());
  // 21:00 local: the yard is armed 08-20 only.
  const int at21 = 5 * 3600;
  EXPECT_TRUE(Run(at21, at21 + 30, {kIntruder}).empty());
  // 08:00 the next morning it is armed again.
  const int at08 = 16 * 3600;
  EXPECT_TRUE(Run(at08, at08 + 10, {kIntruder}).empty());
  EXPECT_EQ(See(kT0 + (at08 + 10) * kSec, {kIntruder}).size(), 1u);
}

// Drives in along the kerb for 4 s, stops at x = 0.75 at 4 s and stands
// there, swaying by less than the still radius.
Det ParkingCar(int second) {
  const double x = second < 4 ? 0.55 + 0.05 * second : 0.75 + (second % 2 ? 0.005 : -0.005);
  return {"vehicle", x, 0.8, "v1"};
}

TEST_F(EdgeZoneTest, StationaryVehicleStartsOnlyAfterTheDwellFromItsStop) {
  const Det person_still{"person", 0.9, 0.9, "p9"};   // not a vehicle
  const Det untracked_car{"vehicle", 0.6, 0.6};       // cannot be known to stand still
  std::vector<Signal> early;
  for (int i = 0; i < 64; ++i) {
    auto s = See(kT0 + i * kSec, {ParkingCar(i), person_still, untracked_car});
    early.insert(early.end(), s.begin(), s.end());
  }
  EXPECT_TRUE(early.empty()) << Describe(early[0]);
  auto s = See(kT0 + 64 * kSec, {ParkingCar(64), person_still, untracked_car});
  ASSERT_EQ(s.size(), 1u);
  EXPECT_EQ(Phase(s[0]), "start");
  EXPECT_EQ(s[0].category, "illegal_parking");
  EXPECT_EQ(s[0].attributes.at("zone"), "kerb");
  EXPECT_EQ(s[0].attributes.at("detector"), "stationary");
  EXPECT_EQ(s[0].ts_ms, kT0 + 4 * kSec);  // when it stopped
  EXPECT_DOUBLE_EQ(s[0].value, 60);
  EXPECT_NE(s[0].explanation.find("a stationary vehicle for 60s (stationary 60 s)"), std::string::npos)
      << s[0].explanation;
}

TEST_F(EdgeZoneTest, MovingVehiclesNeverBecomeStationary) {
  std::vector<Signal> out;
  for (int i = 0; i < 180; ++i) {
    const Det creeping{"vehicle", 0.52 + 0.0025 * i, 0.7, "slow"};         // 0.0025 a second
    const Det shuttling{"vehicle", 0.55 + 0.04 * (i % 10), 0.9, "fast"};  // back and forth
    auto s = See(kT0 + i * kSec, {creeping, shuttling});
    out.insert(out.end(), s.begin(), s.end());
  }
  EXPECT_TRUE(out.empty()) << Describe(out[0]);
}

TEST_F(EdgeZoneTest, ParkedVehicleStaysOneEventWithoutEnd) {
  std::vector<Signal> out;
  const int until = 4 + 60 + 10 * 60;  // stop, dwell, then ten more minutes
  for (int i = 0; i <= until; ++i) {
    auto s = See(kT0 + i * kSec, {ParkingCar(i)});
    out.insert(out.end(), s.begin(), s.end());
  }
  ASSERT_FALSE(out.empty());
  EXPECT_EQ(Phase(out[0]), "start");
  const std::string start_id = out[0].id;
  for (size_t i = 1; i < out.size(); ++i) {
    EXPECT_EQ(Phase(out[i]), "update") << Describe(out[i]);
    EXPECT_EQ(out[i].follows, start_id);
    EXPECT_EQ(out[i].attributes.at("event_id"), start_id);
  }
  EXPECT_EQ(tracker_->tracked_objects(), 1u);
  // It drives off: the event ends a cooldown after it was last seen.
  EXPECT_TRUE(Run(until + 1, until + 15, {}).empty());
  auto s = See(kT0 + (until + 15) * kSec, {});
  ASSERT_EQ(s.size(), 1u);
  EXPECT_EQ(Phase(s[0]), "end");
  EXPECT_EQ(s[0].follows, start_id);
  EXPECT_EQ(s[0].attributes.at("duration_s"), std::to_string(until - 4));
}

TEST_F(EdgeZoneTest, CrowdNeedsMinPeople) {
  const Det p1{"person", 0.2, 0.4}, p2{"person", 0.3, 0.4}, p3{"person", 0.4, 0.45};
  const Det car{"vehicle", 0.7, 0.3}, bus{"vehicle", 0.8, 0.3}, van{"vehicle", 0.9, 0.3};
  EXPECT_TRUE(Run(0, 60, {p1, p2, car, bus, van}).empty());  // two people and three vehicles
  EXPECT_TRUE(Run(60, 80, {p1, p2, p3}).empty());
  auto s = See(kT0 + 80 * kSec, {p1, p2, p3});
  ASSERT_EQ(s.size(), 1u);
  EXPECT_EQ(Phase(s[0]), "start");
  EXPECT_EQ(s[0].category, "crowd_gathering");
  EXPECT_EQ(s[0].attributes.at("zone"), "square");
  EXPECT_EQ(s[0].ts_ms, kT0 + 60 * kSec);
  EXPECT_DOUBLE_EQ(s[0].value, 3);
  EXPECT_NE(s[0].explanation.find("a crowd of 3 for 20s (3 people)"), std::string::npos) << s[0].explanation;
  EXPECT_EQ(s[0].attributes.at("box"), "[0.150, 0.300, 0.300, 0.150]");  // around the three
}

TEST_F(EdgeZoneTest, LineCountsBothDirectionsAndRaisesOnlyForTheAlarmOne) {
  EXPECT_TRUE(See(kT0, {{"person", 0.4, 0.3, "p1"}, {"person", 0.6, 0.35, "p2"}, {"vehicle", 0.4, 0.2, "v1"},
                        {"person", 0.4, 0.25}})
                  .empty());
  // p1 left to right (a_to_b), p2 right to left, the vehicle and the untracked person do not count.
  auto s = See(kT0 + kSec, {{"person", 0.6, 0.3, "p1"}, {"person", 0.4, 0.35, "p2"}, {"vehicle", 0.6, 0.2, "v1"},
                            {"person", 0.6, 0.25}});
  EXPECT_EQ(tracker_->line_counts().at("gate"), (LineCount{1, 1}));
  ASSERT_EQ(s.size(), 1u);
  EXPECT_EQ(Phase(s[0]), "start");
  EXPECT_EQ(s[0].category, "gate_crossing");
  EXPECT_EQ(s[0].rule_id, "camera.line");
  EXPECT_EQ(s[0].attributes.at("zone"), "gate");
  EXPECT_EQ(s[0].attributes.at("detector"), "line");
  EXPECT_DOUBLE_EQ(s[0].value, 1);
  EXPECT_NE(s[0].explanation.find("(1 crossing a_to_b)"), std::string::npos) << s[0].explanation;
  const std::string start_id = s[0].id;
  EXPECT_EQ(start_id, "cam-031:gate:line:" + std::to_string(kT0 + kSec));
  // p2 comes back left to right and p3 crosses too: a_to_b in the same episode, no second START.
  EXPECT_TRUE(See(kT0 + 2 * kSec, {{"person", 0.6, 0.35, "p2"}}).empty());
  EXPECT_EQ(tracker_->line_counts().at("gate"), (LineCount{2, 1}));
  EXPECT_TRUE(See(kT0 + 3 * kSec, {{"person", 0.3, 0.3, "p3"}}).empty());
  EXPECT_TRUE(See(kT0 + 4 * kSec, {{"person", 0.7, 0.3, "p3"}}).empty());
  EXPECT_EQ(tracker_->line_counts().at("gate"), (LineCount{3, 1}));
  // A cooldown after the last alarm crossing (4 s) the episode ends, with 3 crossings.
  EXPECT_TRUE(Run(5, 19, {}).empty());
  s = See(kT0 + 19 * kSec, {});
  ASSERT_EQ(s.size(), 1u);
  EXPECT_EQ(Phase(s[0]), "end");
  EXPECT_EQ(s[0].follows, start_id);
  EXPECT_EQ(s[0].attributes.at("event_id"), start_id);
  EXPECT_DOUBLE_EQ(s[0].value, 3);
  // The next crossing opens a new episode, counted from one.
  EXPECT_TRUE(See(kT0 + 30 * kSec, {{"person", 0.45, 0.3, "p4"}}).empty());
  s = See(kT0 + 31 * kSec, {{"person", 0.55, 0.3, "p4"}});
  ASSERT_EQ(s.size(), 1u);
  EXPECT_EQ(s[0].id, "cam-031:gate:line:" + std::to_string(kT0 + 31 * kSec));
  EXPECT_DOUBLE_EQ(s[0].value, 1);
  EXPECT_EQ(tracker_->line_counts().at("gate"), (LineCount{4, 1}));
}

TEST_F(EdgeZoneTest, OlderOrEqualTimestampsAreIgnored) {
  See(kT0 + 10 * kSec, {{"person", 0.4, 0.3, "p1"}});
  EXPECT_TRUE(See(kT0 + 10 * kSec, {{"person", 0.6, 0.3, "p1"}}).empty());
  EXPECT_TRUE(See(kT0 + 9 * kSec, {{"person", 0.6, 0.3, "p1"}}).empty());
  EXPECT_EQ(tracker_->line_counts().at("gate"), (LineCount{0, 0}));
  // Had either applied, p1 would now cross back (b_to_a).
  EXPECT_TRUE(See(kT0 + 11 * kSec, {{"person", 0.4, 0.3, "p1"}}).empty());
  EXPECT_EQ(tracker_->line_counts().at("gate"), (LineCount{0, 0}));
}

// A scenario touching every kind of state: an intruder (active), a car
// parking (pending at 40 s), people crossing the gate, a crowd building up.
std::vector<Det> Scene(int i) {
  std::vector<Det> d = {ParkingCar(i)};
  if (i < 30) d.push_back(kIntruder);
  if (i >= 20) {
    for (int k = 0; k < 3; ++k) d.push_back({"person", 0.2 + 0.1 * k, 0.4});
  }
  const double x = (i / 5) % 2 ? 0.45 : 0.55;  // crosses every 5 s, alternately
  d.push_back({"person", x, 0.2, "walker"});
  return d;
}

TEST_F(EdgeZoneTest, StateRoundTripContinuesTheSameWay) {
  for (int i = 0; i <= 40; ++i) See(kT0 + i * kSec, Scene(i));
  const auto state = tracker_->TakeDirty();
  EXPECT_TRUE(tracker_->TakeDirty().empty());  // nothing changed since
  ASSERT_FALSE(state.empty());
  auto restored = NewTracker();
  for (const StateEntry& e : state) {
    EXPECT_EQ(e.key.rfind(EdgeZoneTracker::StatePrefix("cam-031"), 0), 0u) << e.key;
    ASSERT_TRUE(e.value.has_value());
    restored->Restore(e.key, *e.value);
  }
  EXPECT_TRUE(restored->TakeDirty().empty());  // it holds exactly what was written
  EXPECT_EQ(restored->line_counts(), tracker_->line_counts());
  EXPECT_EQ(restored->tracked_objects(), tracker_->tracked_objects());

  std::vector<Signal> a, b;
  // The same last message again: ignored by both.
  tracker_->OnDetections(Message(kT0 + 40 * kSec, Scene(40)), &a);
  restored->OnDetections(Message(kT0 + 40 * kSec, Scene(40)), &b);
  for (int i = 41; i <= 130; ++i) {
    const CameraDetections d = Message(kT0 + i * kSec, Scene(i));
    tracker_->OnDetections(d, &a);
    restored->OnDetections(d, &b);
  }
  tracker_->Expire(kT0 + 200 * kSec, &a);
  restored->Expire(kT0 + 200 * kSec, &b);
  ASSERT_FALSE(a.empty());
  EXPECT_EQ(Describe(b), Describe(a));
  EXPECT_EQ(restored->line_counts(), tracker_->line_counts());
  // The car's START came from the restored pending episode, dated at its stop.
  bool parked = false;
  for (const Signal& s : a) parked = parked || s.id == "cam-031:kerb:stationary:" + std::to_string(kT0 + 4 * kSec);
  EXPECT_TRUE(parked);
}

TEST_F(EdgeZoneTest, MalformedStateIsIgnored) {
  const std::string p = EdgeZoneTracker::StatePrefix("cam-031");
  EXPECT_EQ(p, "edge/cam-031/");
  const std::string idle = "0 0 0 0 0 0 0 0.000000 0.000000 0.000000 0.000000";
  const std::vector<std::pair<std::string, std::string>> bad = {
      {p + "t", "garbage"},
      {p + "t", "1 5 1\n2 v1 0.5 0.5"},                        // cut short
      {p + "t", "1 5 1\n30 v1 0.5 0.5 0.5 0.5 1 1\n"},          // id longer than the text
      {p + "t", "1 5 300\n"},                                  // more tracks than the cap
      {p + "t", "1 5 1\n2 v1 nan 0.5 0.5 0.5 1 1\n"},
      {p + "t", "1 5 0\n trailing"},
      {p + "z/yard/intrusion", "x y z"},
      {p + "z/yard/intrusion", "7 1 2 3 1 1 1 0 0 0 0"},       // no such phase
      {p + "l/gate", "1 2"},
      {p + "l/gate", "-1 0 0 " + idle},
      {p + "l/gate", "1 1 0 broken"},
      {p + "z/nowhere/intrusion", "2 1 2 3 1 1 1 0 0 0 0"},    // no such zone
      {"edge/cam-999/t", "1 5 0\n"},                           // another camera
  };
  for (const auto& [k, v] : bad) tracker_->Restore(k, v);
  EXPECT_TRUE(tracker_->TakeDirty().empty());
  EXPECT_EQ(tracker_->line_counts().at("gate"), (LineCount{0, 0}));
  EXPECT_EQ(tracker_->tracked_objects(), 0u);
  // It behaves like a fresh tracker.
  auto fresh = NewTracker();
  std::vector<Signal> a, b;
  for (int i = 0; i <= 100; ++i) {
    const CameraDetections d = Message(kT0 + i * kSec, Scene(i));
    tracker_->OnDetections(d, &a);
    fresh->OnDetections(d, &b);
  }
  ASSERT_FALSE(a.empty());
  EXPECT_EQ(Describe(a), Describe(b));
}

TEST_F(EdgeZoneTest, TrackMemoryIsCappedAndForgetsStaleTracks) {
  // 300 walkers left of the gate, one new one every half second.
  int64_t ts = kT0;
  for (int i = 0; i < 300; ++i, ts += 500) See(ts, {{"person", 0.4, 0.3, "w" + std::to_string(i)}});
  EXPECT_EQ(tracker_->tracked_objects(), EdgeZoneTracker::kMaxTracks);
  // w0 (least recently seen) was evicted: its step across is its first sighting.
  // w299 is remembered: its step across is a crossing.
  See(ts, {{"person", 0.6, 0.3, "w0"}, {"person", 0.6, 0.3, "w299"}});
  EXPECT_EQ(tracker_->line_counts().at("gate"), (LineCount{1, 0}));
  EXPECT_EQ(tracker_->tracked_objects(), EdgeZoneTracker::kMaxTracks);
  // Five minutes unseen: gone.
  Expire(ts + kMin);
  EXPECT_EQ(tracker_->tracked_objects(), EdgeZoneTracker::kMaxTracks);
  Expire(ts + 5 * kMin);
  EXPECT_EQ(tracker_->tracked_objects(), 2u);  // w0 and w299, seen at ts
  Expire(ts + 5 * kMin + 1);
  EXPECT_EQ(tracker_->tracked_objects(), 0u);
  // A forgotten track coming back is a new one: no crossing.
  See(ts + 6 * kMin, {{"person", 0.4, 0.3, "w299"}});
  EXPECT_EQ(tracker_->line_counts().at("gate"), (LineCount{1, 0}));
}

TEST_F(EdgeZoneTest, StaleTracksAreDroppedByMessagesToo) {
  See(kT0, {{"person", 0.4, 0.3, "p1"}, {"person", 0.4, 0.35, "p2"}});
  See(kT0 + 5 * kMin, {{"person", 0.4, 0.35, "p2"}});
  See(kT0 + 5 * kMin + 1, {});
  EXPECT_EQ(tracker_->tracked_objects(), 1u);  // p1 unseen for over five minutes
  See(kT0 + 5 * kMin + 2, {{"person", 0.6, 0.3, "p1"}, {"person", 0.6, 0.35, "p2"}});
  EXPECT_EQ(tracker_->line_counts().at("gate"), (LineCount{1, 0}));  // only p2 crossed
}

}  // namespace
}  // namespace cityloop::detect::camera
