#include "ingest/unit_fleet.h"

#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <variant>
#include <vector>

#include "core/time_util.h"
#include "ingest/command_decoder.h"
#include "ingest/unit_decoder.h"
#include "tests/support/test_city.h"

namespace cityloop::ingest {
namespace {

using nlohmann::json;

constexpr int64_t kSec = 1000;
constexpr int64_t kMin = 60 * kSec;
const int64_t kStart = *ParseRfc3339Ms("2026-11-28T10:00:00+08:00");

// The test city with unit types and speeds: drain-1 a truck (25 km/h),
// gas-u1 a car (36 km/h), drain-2 without a type (the default, 30 km/h).
Config FleetConfig() {
  Config c = testing::TestConfig();
  for (Unit& u : c.city.units) {
    if (u.id == "drain-1") u.type = "truck";
    if (u.id == "gas-u1") u.type = "car";
  }
  c.dispatch.default_speed_kmh = 30;
  c.dispatch.speed_kmh = {{"truck", 25}, {"car", 36}};
  return c;
}

class UnitFleetTest : public ::testing::Test {
 protected:
  std::shared_ptr<const CityModel> city = testing::TestCity(FleetConfig());
  const TopicNames& topics() const { return city->config().kafka.topics; }
  const Unit& unit(const std::string& id) const {
    for (const Unit& u : city->config().city.units) {
      if (u.id == id) return u;
    }
    throw std::runtime_error("no unit " + id);
  }

  UnitFleetOptions Options(bool operate = false, uint64_t seed = 5) const {
    UnitFleetOptions o;
    o.seed = seed;
    o.start_ms = kStart;
    o.operate = operate;
    return o;
  }

  static DispatchOrder Order(const std::string& case_id, const std::string& dept, const std::string& unit_id,
                             LatLon where, int64_t ts) {
    DispatchOrder o;
    o.case_id = case_id;
    o.department = dept;
    o.unit_id = unit_id;
    o.location = where;
    o.ts_ms = ts;
    return o;
  }

  // The reports of one unit, parsed.
  std::vector<json> Reports(const std::vector<SimulatedReading>& out, const std::string& unit_id) const {
    std::vector<json> r;
    for (const auto& m : out) {
      if (m.topic == topics().units && m.key == unit_id) r.push_back(json::parse(m.value));
    }
    return r;
  }
  std::vector<json> Commands(const std::vector<SimulatedReading>& out) const {
    std::vector<json> r;
    for (const auto& m : out) {
      if (m.topic == topics().commands) r.push_back(json::parse(m.value));
    }
    return r;
  }
  // ts of the first report with status at or after from.
  static int64_t FirstWith(const std::vector<json>& reports, const std::string& status, int64_t from = 0) {
    for (const auto& r : reports) {
      if (r["status"] == status && r["ts"].get<int64_t>() >= from) return r["ts"];
    }
    return -1;
  }
};

int64_t Travel(LatLon a, LatLon b, double kmh) { return std::llround(DistanceMeters(a, b) / (kmh / 3.6) * 1000); }

TEST_F(UnitFleetTest, IdleUnitsReportAvailableAtTheirBaseEveryInterval) {
  UnitFleet fleet(city, Options());
  std::vector<SimulatedReading> out;
  fleet.Advance(kStart + 10 * kMin, &out);
  EXPECT_EQ(fleet.time_ms(), kStart + 10 * kMin);
  EXPECT_FALSE(fleet.busy());
  for (size_t i = 1; i < out.size(); ++i) EXPECT_LE(out[i - 1].ts_ms, out[i].ts_ms) << i;
  UnitDecoder decoder(city);
  for (const Unit& u : city->config().city.units) {
    const auto reports = Reports(out, u.id);
    ASSERT_GE(reports.size(), 10u) << u.id;
    EXPECT_LT(reports.front()["ts"].get<int64_t>(), kStart + kMin) << u.id;
    for (size_t i = 0; i < reports.size(); ++i) {
      const json& r = reports[i];
      EXPECT_EQ(r["unit_id"], u.id);
      EXPECT_EQ(r["dept"], u.department);
      EXPECT_EQ(r["status"], "available");
      EXPECT_NEAR(r["lat"].get<double>(), u.base.lat, 1e-6);
      EXPECT_NEAR(r["lon"].get<double>(), u.base.lon, 1e-6);
      if (i > 0) {
        EXPECT_EQ(r["ts"].get<int64_t>() - reports[i - 1]["ts"].get<int64_t>(), kMin) << u.id;
      }
      // What the engine's decoder accepts.
      auto decoded = decoder.Decode(r.dump(), kStart + 10 * kMin);
      ASSERT_TRUE(std::holds_alternative<UnitUpdate>(decoded)) << r.dump();
    }
  }
  for (const auto& m : out) EXPECT_EQ(m.topic, topics().units);
}

TEST_F(UnitFleetTest, AnOrderSendsTheUnitOutAndBackWithSeededTimes) {
  UnitFleet fleet(city, Options());
  const Unit& drain = unit("drain-1");
  const LatLon scene = testing::TestCellCenter(2, 2);
  const int64_t t0 = kStart + 5 * kMin;
  std::vector<SimulatedReading> out;
  fleet.Advance(t0, &out);
  ASSERT_EQ(fleet.OnOrder(Order("CL-1", "drainage", "drain-1", scene, t0), t0), "");
  EXPECT_TRUE(fleet.busy());
  EXPECT_EQ(fleet.Find("drain-1")->case_id, "CL-1");
  EXPECT_EQ(fleet.Find("drain-1")->status, UnitStatus::kAvailable);  // reacting, still at home
  fleet.Advance(t0 + 2 * 3600000, &out);
  EXPECT_FALSE(fleet.busy());
  EXPECT_TRUE(Commands(out).empty()) << "no operators unless asked";

  const auto reports = Reports(out, "drain-1");
  const int64_t depart = FirstWith(reports, "enroute");
  const int64_t arrive = FirstWith(reports, "onscene");
  const int64_t handled = FirstWith(reports, "returning");
  const int64_t back = FirstWith(reports, "available", handled);
  ASSERT_GT(depart, 0);
  EXPECT_GE(depart - t0, 1 * kMin);
  EXPECT_LE(depart - t0, 3 * kMin);
  EXPECT_EQ(arrive - depart, Travel(drain.base, scene, 25));
  EXPECT_GE(handled - arrive, 5 * kMin);
  EXPECT_LE(handled - arrive, 20 * kMin);
  EXPECT_EQ(back - handled, Travel(scene, drain.base, 25));
  EXPECT_EQ((depart - t0) % kSec, 0);

  // Status by time: available until it leaves, then enroute every 10 s,
  // on scene every minute, returning every 10 s, available again.
  int64_t prev = -1;
  std::string prev_status;
  for (const json& r : reports) {
    const int64_t ts = r["ts"];
    const std::string status = r["status"];
    const std::string want = ts < depart    ? "available"
                             : ts < arrive  ? "enroute"
                             : ts < handled ? "onscene"
                             : ts < back    ? "returning"
                                            : "available";
    // A change is reported at its instant, under the new status.
    EXPECT_EQ(status, want) << r.dump();
    if (prev >= 0 && status == prev_status && ts != depart && ts != arrive && ts != handled && ts != back) {
      const int64_t gap = ts - prev;
      if (status == "enroute" || status == "returning") {
        EXPECT_EQ(gap, 10 * kSec) << r.dump();
      }
      if (status == "onscene" || status == "available") {
        EXPECT_EQ(gap, kMin) << r.dump();
      }
    }
    prev = ts;
    prev_status = status;
  }
  EXPECT_EQ(reports.back()["status"], "available");
  EXPECT_EQ(fleet.Find("drain-1")->case_id, "");
}

TEST_F(UnitFleetTest, PositionsLieOnTheStraightLineAtTheUnitsSpeed) {
  UnitFleet fleet(city, Options());
  const Unit& drain = unit("drain-1");
  const LatLon scene = testing::TestCellCenter(3, 3);
  ASSERT_EQ(fleet.OnOrder(Order("CL-1", "drainage", "drain-1", scene, kStart), kStart), "");
  std::vector<SimulatedReading> out;
  fleet.Advance(kStart + 3 * 3600000, &out);
  const auto reports = Reports(out, "drain-1");
  const int64_t depart = FirstWith(reports, "enroute");
  const int64_t arrive = FirstWith(reports, "onscene");
  const int64_t handled = FirstWith(reports, "returning");
  const int64_t back = FirstWith(reports, "available", handled);
  auto expect_on_line = [](const json& r, LatLon a, LatLon b, double f) {
    EXPECT_NEAR(r["lat"].get<double>(), a.lat + (b.lat - a.lat) * f, 1e-6) << r.dump();
    EXPECT_NEAR(r["lon"].get<double>(), a.lon + (b.lon - a.lon) * f, 1e-6) << r.dump();
  };
  int moving = 0;
  double last_from_base = -1;
  for (const json& r : reports) {
    const int64_t ts = r["ts"];
    if (r["status"] == "enroute") {
      ++moving;
      expect_on_line(r, drain.base, scene, static_cast<double>(ts - depart) / static_cast<double>(arrive - depart));
      const double d = DistanceMeters(drain.base, {r["lat"].get<double>(), r["lon"].get<double>()});
      EXPECT_GT(d, last_from_base);
      last_from_base = d;
    } else if (r["status"] == "returning") {
      ++moving;
      expect_on_line(r, scene, drain.base, static_cast<double>(ts - handled) / static_cast<double>(back - handled));
    } else if (r["status"] == "onscene") {
      expect_on_line(r, scene, scene, 0);
    }
  }
  // About 1.6 km at 25 km/h: some 23 reports each way.
  EXPECT_GE(moving, 2 * static_cast<int>(Travel(drain.base, scene, 25) / (10 * kSec)));
  EXPECT_EQ(fleet.Find("drain-1")->status, UnitStatus::kAvailable);
}

TEST_F(UnitFleetTest, EachUnitDrivesAtItsTypesSpeed) {
  const Config& cfg = city->config();
  EXPECT_DOUBLE_EQ(UnitSpeedMps(unit("drain-1"), cfg.dispatch), 25 / 3.6);
  EXPECT_DOUBLE_EQ(UnitSpeedMps(unit("gas-u1"), cfg.dispatch), 36 / 3.6);
  EXPECT_DOUBLE_EQ(UnitSpeedMps(unit("drain-2"), cfg.dispatch), 30 / 3.6);
  DispatchOptions odd;
  odd.default_speed_kmh = 0;      // not usable: the built-in default
  odd.speed_kmh = {{"truck", -5}};  // not usable: the default
  EXPECT_DOUBLE_EQ(UnitSpeedMps(unit("drain-1"), odd), DispatchOptions{}.default_speed_kmh / 3.6);

  UnitFleet fleet(city, Options());
  const LatLon scene = testing::TestCellCenter(1, 2);
  ASSERT_EQ(fleet.OnOrder(Order("CL-1", "drainage", "drain-1", scene, kStart), kStart), "");
  ASSERT_EQ(fleet.OnOrder(Order("CL-2", "drainage", "drain-2", scene, kStart), kStart), "");
  ASSERT_EQ(fleet.OnOrder(Order("CL-3", "gas", "gas-u1", scene, kStart), kStart), "");
  std::vector<SimulatedReading> out;
  fleet.Advance(kStart + 3 * 3600000, &out);
  for (const auto& [id, kmh] : std::map<std::string, double>{{"drain-1", 25}, {"drain-2", 30}, {"gas-u1", 36}}) {
    const auto reports = Reports(out, id);
    EXPECT_EQ(FirstWith(reports, "onscene") - FirstWith(reports, "enroute"), Travel(unit(id).base, scene, kmh)) << id;
  }
}

TEST_F(UnitFleetTest, ABusyUnitIgnoresASecondOrderAndBadOrdersAreRefused) {
  UnitFleet fleet(city, Options());
  const LatLon scene = testing::TestCellCenter(2, 2);
  const int64_t t0 = kStart + kMin;
  EXPECT_EQ(fleet.OnOrder(Order("CL-1", "drainage", "drain-1", scene, t0), t0), "");
  EXPECT_EQ(fleet.OnOrder(Order("CL-2", "drainage", "drain-1", scene, t0), t0 + 10 * kMin), "busy");
  EXPECT_EQ(fleet.OnOrder(Order("CL-1", "drainage", "drain-1", scene, t0), t0), "duplicate");
  EXPECT_EQ(fleet.OnOrder(Order("CL-3", "drainage", "", scene, t0), t0), "no_unit");
  EXPECT_EQ(fleet.OnOrder(Order("CL-3", "drainage", "drain-9", scene, t0), t0), "unknown_unit");
  EXPECT_EQ(fleet.OnOrder(Order("CL-3", "gas", "drain-2", scene, t0), t0), "department_mismatch");
  EXPECT_EQ(fleet.OnOrder(Order("CL-3", "drainage", "drain-2", scene, kStart - kMin), t0), "before_start");
  EXPECT_EQ(fleet.OnOrder(Order("CL-3", "drainage", "drain-2", {NAN, 0}, t0), t0), "bad_location");
  EXPECT_EQ(fleet.stats().orders_taken, 1);
  EXPECT_EQ(fleet.stats().orders_ignored, 7);

  std::vector<SimulatedReading> out;
  fleet.Advance(t0 + 10 * kMin, &out);
  // The second order changed nothing: drain-1 works CL-1 only.
  EXPECT_EQ(fleet.Find("drain-1")->case_id, "CL-1");
  while (fleet.busy()) fleet.Advance(fleet.next_ms(), &out);
  // Back home it takes the next order.
  const int64_t later = fleet.time_ms();
  EXPECT_EQ(fleet.OnOrder(Order("CL-2", "drainage", "drain-1", scene, t0), later), "");
  EXPECT_EQ(fleet.Find("drain-1")->case_id, "CL-2");
}

TEST_F(UnitFleetTest, ACancelledOrderBeforeLeavingKeepsTheUnitHome) {
  UnitFleet fleet(city, Options(/*operate=*/true));
  const int64_t t0 = kStart + kMin;
  ASSERT_EQ(fleet.OnOrder(Order("CL-1", "drainage", "drain-1", testing::TestCellCenter(2, 2), t0), t0), "");
  // The reaction is at least a minute: 30 s in it has not left.
  EXPECT_TRUE(fleet.OnCancelled("CL-1", "drainage", t0 + 30 * kSec));
  EXPECT_FALSE(fleet.busy());
  EXPECT_FALSE(fleet.OnCancelled("CL-1", "drainage", t0 + 40 * kSec)) << "nothing left to cancel";
  std::vector<SimulatedReading> out;
  fleet.Advance(t0 + 3600000, &out);
  for (const json& r : Reports(out, "drain-1")) EXPECT_EQ(r["status"], "available") << r.dump();
  EXPECT_TRUE(Commands(out).empty());
  EXPECT_EQ(fleet.stats().cancelled, 1);
}

TEST_F(UnitFleetTest, ACancelledOrderOnTheWayTurnsTheUnitBackFromWhereItIs) {
  UnitFleet fleet(city, Options(/*operate=*/true));
  const Unit& drain = unit("drain-1");
  const LatLon scene = testing::TestCellCenter(3, 3);
  ASSERT_EQ(fleet.OnOrder(Order("CL-1", "drainage", "drain-1", scene, kStart), kStart), "");
  std::vector<SimulatedReading> out;
  // Until it is on the way.
  while (fleet.Find("drain-1")->status != UnitStatus::kEnroute) fleet.Advance(fleet.next_ms(), &out);
  const int64_t depart = fleet.time_ms();
  const int64_t cancel_at = depart + 45 * kSec;
  fleet.Advance(cancel_at - kSec, &out);
  ASSERT_TRUE(fleet.OnCancelled("CL-1", "drainage", cancel_at));
  fleet.Advance(cancel_at + 3600000, &out);
  EXPECT_FALSE(fleet.busy());

  const auto reports = Reports(out, "drain-1");
  EXPECT_EQ(FirstWith(reports, "onscene"), -1) << "it never arrived";
  const int64_t turned = FirstWith(reports, "returning");
  EXPECT_EQ(turned, cancel_at);
  const int64_t arrive = depart + Travel(drain.base, scene, 25);
  const double f = static_cast<double>(cancel_at - depart) / static_cast<double>(arrive - depart);
  const LatLon there{drain.base.lat + (scene.lat - drain.base.lat) * f, drain.base.lon + (scene.lon - drain.base.lon) * f};
  for (const json& r : reports) {
    if (r["ts"] == turned && r["status"] == "returning") {
      EXPECT_NEAR(r["lat"].get<double>(), there.lat, 1e-6);
      EXPECT_NEAR(r["lon"].get<double>(), there.lon, 1e-6);
    }
  }
  const int64_t back = FirstWith(reports, "available", turned);
  EXPECT_EQ(back, cancel_at + Travel(there, drain.base, 25));
  EXPECT_NEAR(reports.back()["lat"].get<double>(), drain.base.lat, 1e-6);
  // The operators had acknowledged and set out; nothing after the cancellation.
  std::vector<std::string> actions;
  for (const json& c : Commands(out)) actions.push_back(c["action"]);
  EXPECT_EQ(actions, (std::vector<std::string>{"acknowledge", "enroute"}));
}

TEST_F(UnitFleetTest, OperatorsSendTheCommandsInOrderAtTheRightTimes) {
  UnitFleet fleet(city, Options(/*operate=*/true));
  const LatLon scene = testing::TestCellCenter(2, 3);
  const int64_t t0 = kStart + 2 * kMin;
  std::vector<SimulatedReading> out;
  fleet.Advance(t0 - 30 * kSec, &out);
  // Received later than its own time: it counts from when it arrived.
  ASSERT_EQ(fleet.OnOrder(Order("CL-20261128-000001", "drainage", "drain-1", scene, t0 - 30 * kSec), t0), "");
  while (fleet.busy()) fleet.Advance(fleet.next_ms(), &out);
  for (size_t i = 1; i < out.size(); ++i) EXPECT_LE(out[i - 1].ts_ms, out[i].ts_ms) << i;

  const auto reports = Reports(out, "drain-1");
  const int64_t depart = FirstWith(reports, "enroute");
  const int64_t arrive = FirstWith(reports, "onscene");
  const int64_t handled = FirstWith(reports, "returning");
  EXPECT_GE(depart - t0, kMin);
  EXPECT_LE(depart - t0, 3 * kMin);
  const auto commands = Commands(out);
  ASSERT_EQ(commands.size(), 5u);
  const std::vector<std::pair<std::string, int64_t>> want = {
      {"acknowledge", depart}, {"enroute", depart}, {"arrive", arrive}, {"handled", handled}};
  CommandDecoder decoder(city);
  for (size_t i = 0; i < commands.size(); ++i) {
    const json& c = commands[i];
    if (i < want.size()) {
      EXPECT_EQ(c["action"], want[i].first);
      EXPECT_EQ(c["ts"].get<int64_t>(), want[i].second) << c.dump();
      EXPECT_EQ(c["actor"], "sim-op-drainage");
    } else {
      EXPECT_EQ(c["action"], "verify_pass");
      EXPECT_GE(c["ts"].get<int64_t>() - handled, 2 * kMin);
      EXPECT_LE(c["ts"].get<int64_t>() - handled, 5 * kMin);
      EXPECT_EQ(c["actor"], "sim-inspector");
    }
    EXPECT_EQ(c["command_id"], "sim-CL-20261128-000001-" + c["action"].get<std::string>());
    EXPECT_EQ(c["case_id"], "CL-20261128-000001");
    EXPECT_EQ(c["role"], "operator");
    EXPECT_EQ(c["department"], "drainage");
    EXPECT_EQ(c.contains("unit_id"), c["action"] == "enroute") << c.dump();
    if (c["action"] == "enroute") {
      EXPECT_EQ(c["unit_id"], "drain-1");
    }
    auto decoded = decoder.Decode(c.dump(), handled + 10 * kMin);
    ASSERT_TRUE(std::holds_alternative<Command>(decoded)) << c.dump();
  }
  for (const auto& m : out) {
    if (m.topic == topics().commands) {
      EXPECT_EQ(m.key, "CL-20261128-000001");
    }
  }
  // At one instant the unit's report comes before the operators' commands.
  size_t report_at_depart = out.size(), ack = out.size();
  for (size_t i = 0; i < out.size(); ++i) {
    if (out[i].ts_ms != depart) continue;
    if (out[i].topic == topics().units && out[i].key == "drain-1") report_at_depart = std::min(report_at_depart, i);
    if (out[i].topic == topics().commands) ack = std::min(ack, i);
  }
  EXPECT_LT(report_at_depart, ack);
  EXPECT_EQ(fleet.stats().commands, 5);
}

TEST_F(UnitFleetTest, AssistingTasksGetNoInspectionAndLaterDispatchesNewIds) {
  UnitFleet fleet(city, Options(/*operate=*/true));
  DispatchOrder assist = Order("CL-7", "gas", "gas-u1", testing::TestCellCenter(1, 1), kStart);
  assist.lead = false;
  DispatchOrder again = Order("CL-7", "drainage", "drain-1", testing::TestCellCenter(1, 1), kStart);
  again.dispatch = 3;
  ASSERT_EQ(fleet.OnOrder(assist, kStart), "");
  ASSERT_EQ(fleet.OnOrder(again, kStart), "");
  std::vector<SimulatedReading> out;
  while (fleet.busy()) fleet.Advance(fleet.next_ms(), &out);
  std::map<std::string, std::vector<std::string>> by_dept;
  for (const json& c : Commands(out)) by_dept[c["department"]].push_back(c["command_id"]);
  EXPECT_EQ(by_dept["gas"].size(), 4u) << "no verify_pass for an assisting task";
  ASSERT_EQ(by_dept["drainage"].size(), 5u);
  EXPECT_EQ(by_dept["drainage"][0], "sim-CL-7-3-acknowledge");
}

TEST_F(UnitFleetTest, TheSameSeedAndInputGiveTheSameOutputWhateverTheOrderOfOrders) {
  const LatLon a = testing::TestCellCenter(2, 2), b = testing::TestCellCenter(0, 3);
  auto run = [&](uint64_t seed, bool swapped) {
    UnitFleet fleet(city, Options(/*operate=*/true, seed));
    const DispatchOrder x = Order("CL-1", "drainage", "drain-1", a, kStart + kMin);
    const DispatchOrder y = Order("CL-2", "gas", "gas-u1", b, kStart + kMin);
    std::vector<SimulatedReading> out;
    fleet.Advance(kStart + kMin, &out);
    EXPECT_EQ(fleet.OnOrder(swapped ? y : x, kStart + kMin), "");
    EXPECT_EQ(fleet.OnOrder(swapped ? x : y, kStart + kMin), "");
    fleet.Advance(kStart + 2 * 3600000, &out);
    std::vector<std::string> values;
    for (const auto& r : out) values.push_back(r.topic + " " + r.key + " " + r.value);
    return values;
  };
  const auto first = run(5, false);
  EXPECT_EQ(first, run(5, false));
  EXPECT_EQ(first, run(5, true));
  EXPECT_NE(first, run(6, false));
}

TEST_F(UnitFleetTest, OrdersAndCancellationsAreReadFromDispatchEvents) {
  // As dispatch/case_workflow.cc emits them.
  const json order = {
      {"specversion", "1.0"},
      {"id", "CL-20261128-000004:2"},
      {"type", "city.dispatch.order"},
      {"time", "2026-11-28T02:05:00.000Z"},
      {"subject", "CL-20261128-000004"},
      {"data",
       {{"case_id", "CL-20261128-000004"},
        {"department", "drainage"},
        {"task", "lead"},
        {"dispatch", 1},
        {"location", {{"lat", 28.1712}, {"lon", 112.9561}}},
        {"recommended_unit", {{"unit_id", "drain-1"}, {"eta_s", 161}}},
        {"candidates", json::array()}}}};
  auto parsed = ParseDispatchEvent(order.dump());
  ASSERT_TRUE(parsed);
  EXPECT_EQ(parsed->kind, DispatchEvent::Kind::kOrder);
  EXPECT_EQ(parsed->order.case_id, "CL-20261128-000004");
  EXPECT_EQ(parsed->order.department, "drainage");
  EXPECT_EQ(parsed->order.unit_id, "drain-1");
  EXPECT_EQ(parsed->order.ts_ms, *ParseRfc3339Ms("2026-11-28T02:05:00Z"));
  EXPECT_DOUBLE_EQ(parsed->order.location.lat, 28.1712);
  EXPECT_TRUE(parsed->order.lead);

  json none = order;
  none["data"]["recommended_unit"] = nullptr;
  none["data"]["task"] = "assist";
  none["data"]["dispatch"] = 2;
  parsed = ParseDispatchEvent(none.dump());
  ASSERT_TRUE(parsed);
  EXPECT_EQ(parsed->order.unit_id, "");
  EXPECT_FALSE(parsed->order.lead);
  EXPECT_EQ(parsed->order.dispatch, 2);

  json cancel = {{"type", "city.dispatch.cancelled"},
                 {"time", "2026-11-28T02:07:00.000Z"},
                 {"subject", "CL-20261128-000004"},
                 {"data", {{"case_id", "CL-20261128-000004"}, {"department", "drainage"}, {"reason", "merged"}}}};
  parsed = ParseDispatchEvent(cancel.dump());
  ASSERT_TRUE(parsed);
  EXPECT_EQ(parsed->kind, DispatchEvent::Kind::kCancelled);

  EXPECT_FALSE(ParseDispatchEvent("not json"));
  EXPECT_FALSE(ParseDispatchEvent(R"({"type":"city.case.opened","data":{}})"));
  json no_location = order;
  no_location["data"].erase("location");
  EXPECT_FALSE(ParseDispatchEvent(no_location.dump()));
  json bad_types = order;
  bad_types["data"]["department"] = 7;
  EXPECT_FALSE(ParseDispatchEvent(bad_types.dump()));

  // Through the fleet.
  UnitFleet fleet(city, Options(/*operate=*/true, 1));
  EXPECT_EQ(fleet.OnDispatchEvent(order.dump(), kStart), "");
  EXPECT_EQ(fleet.OnDispatchEvent(none.dump(), kStart), "no_unit");
  EXPECT_EQ(fleet.OnDispatchEvent(cancel.dump(), kStart), "");
  EXPECT_EQ(fleet.OnDispatchEvent(cancel.dump(), kStart), "cancel_unmatched");
  EXPECT_EQ(fleet.OnDispatchEvent("{}", kStart), "not_dispatch");
  EXPECT_FALSE(fleet.busy());
}

TEST_F(UnitFleetTest, WhatCameDueBeforeAnOrderComesOutFirst) {
  UnitFleet fleet(city, Options());
  // Nothing advanced yet; the order arrives 30 min in.
  const int64_t t0 = kStart + 30 * kMin;
  ASSERT_EQ(fleet.OnOrder(Order("CL-1", "drainage", "drain-1", testing::TestCellCenter(2, 2), t0), t0), "");
  EXPECT_EQ(fleet.time_ms(), t0);
  EXPECT_LE(fleet.next_ms(), kStart + kMin);
  std::vector<SimulatedReading> out;
  fleet.Advance(t0 + 3600000, &out);
  ASSERT_FALSE(out.empty());
  EXPECT_LT(out.front().ts_ms, kStart + kMin);
  for (size_t i = 1; i < out.size(); ++i) EXPECT_LE(out[i - 1].ts_ms, out[i].ts_ms) << i;
}

}  // namespace
}  // namespace cityloop::ingest
