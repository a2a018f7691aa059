#include "replay/run_diff.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/time_util.h"
#include "tests/support/test_support.h"

namespace cityloop::replay {
namespace {

using nlohmann::json;
using testing::TempDir;
using testing::WriteFile;

constexpr int64_t kT0 = 1795852800000;  // 2026-11-28T08:00:00Z
constexpr int64_t kMinute = 60'000;

json Clock(const std::string& light, int64_t stopped) {
  return {{"started", kT0},   {"limit", 60 * kMinute}, {"warn", 45 * kMinute}, {"deadline", kT0 + 60 * kMinute},
          {"stopped", stopped}, {"paused_total", 0},     {"working", false},     {"light", light},
          {"escalations", 0}};
}

json Event(const std::string& id, int seq, const std::string& action, int64_t at_ms, const std::string& status) {
  return {{"case_id", id},  {"seq", seq},       {"action", action}, {"at", FormatRfc3339Ms(at_ms)},
          {"at_ms", at_ms}, {"actor", "engine"}, {"role", "system"}, {"status", status},
          {"detail", json::object()}};
}

// A closed flooding case from one water-level signal of `device` at t; its
// signal id depends on the device and time only, as in a real replay.
json MakeCase(const std::string& id, const std::string& device, int64_t t) {
  const json signal = {{"id", device + ":" + std::to_string(t)}, {"source", "sensor"}, {"category", "flooding"},
                       {"priority", "high"}, {"cell", 7}, {"ts", t}, {"device_id", device}, {"rule", "wl"}};
  const json task = {{"department", "drainage"},
                     {"lead", true},
                     {"status", "handled"},
                     {"unit", "drain-1"},
                     {"dispatched", t + kMinute},
                     {"acknowledge_clock", Clock("green", t + 2 * kMinute)},
                     {"arrive_clock", Clock("green", t + 10 * kMinute)},
                     {"handle_clock", Clock("green", t + 30 * kMinute)}};
  return {{"id", id},
          {"category", "flooding"},
          {"priority", "high"},
          {"status", "closed"},
          {"cell", 7},
          {"grid", "430102001001"},
          {"department", "drainage"},
          {"recommended_unit", "drain-1"},
          {"first_event", t},
          {"last_signal", t},
          {"tasks", json::array({task})},
          {"verify_clock", Clock("green", t + 40 * kMinute)},
          {"close_clock", Clock("green", t + 50 * kMinute)},
          {"signals", json::array({signal})},
          {"timeline", json::array({Event(id, 1, "city.case.opened", t, "registered"),
                                    Event(id, 2, "city.dispatch.order", t + kMinute, "dispatched"),
                                    Event(id, 3, "city.case.acknowledged", t + 2 * kMinute, "acknowledged"),
                                    Event(id, 4, "city.case.closed", t + 50 * kMinute, "closed")})}};
}

json KpiRow(const std::string& group, int64_t closed, const json& close_rate) {
  return {{"group", group},
          {"counts", {{"accepted", 5}, {"closed", closed}}},
          {"rates", {{"close_rate", close_rate}, {"dispatch_rate", 1.0}}},
          {"times", {{"close", {{"count", closed}, {"mean_ms", 50 * kMinute}, {"p90_ms", 55 * kMinute}}}}},
          {"score", 90.0}};
}

json Table(const std::string& by, const json& rows) { return {{"group_by", by}, {"rows", rows}}; }

json Kpi(const json& department_rows) {
  return {{"by",
           {{"department", Table("department", department_rows)},
            {"district", Table("district", json::array({KpiRow("furong", 4, 0.8)}))},
            {"category", Table("category", json::array())},
            {"total", Table("total", json::array({KpiRow("total", 4, 0.8)}))}}}};
}

json DefaultKpi() { return Kpi(json::array({KpiRow("drainage", 4, 0.8)})); }

void WriteRun(const TempDir& dir, const std::vector<json>& cases, const json& kpi = DefaultKpi(),
              const std::optional<std::string>& digest = std::nullopt) {
  std::string lines;
  for (const json& c : cases) lines += c.dump() + "\n";
  WriteFile(dir.file("cases.jsonl"), lines);
  WriteFile(dir.file("kpi.json"), kpi.dump(2));
  if (digest) WriteFile(dir.file("summary.json"), json{{"digest", *digest}, {"cases", cases.size()}}.dump());
}

// Tests keep the result non-const: indexing a missing key or element then
// reads null and fails an expectation, where const indexing would assert.
json DiffOk(const TempDir& a, const TempDir& b) {
  auto diff = DiffRuns(a.path(), b.path());
  EXPECT_TRUE(diff.ok()) << diff.status().message();
  return diff.ok() ? *diff : json();
}

const std::string kId1 = "CL-20261128-000001", kId2 = "CL-20261128-000002", kId3 = "CL-20261128-000003",
                  kId4 = "CL-20261128-000004";

TEST(RunDiffTest, IdenticalRunsMatch) {
  TempDir a, b;
  const std::vector<json> cases = {MakeCase(kId1, "wl-1", kT0), MakeCase(kId2, "wl-2", kT0 + 60 * kMinute),
                                   json{{"id", kId3}}};  // an older output's bare record still diffs
  WriteRun(a, cases, DefaultKpi(), "sha256:abc");
  WriteRun(b, cases, DefaultKpi(), "sha256:abc");
  json d = DiffOk(a, b);
  EXPECT_EQ(d["match"], true);
  EXPECT_EQ(d["digest_equal"], true);
  EXPECT_EQ(d["a"]["cases"], 3);
  EXPECT_EQ(d["b"]["digest"], "sha256:abc");
  EXPECT_EQ(d["cases"]["matched"], 3);
  EXPECT_EQ(d["cases"]["identical"], 3);
  EXPECT_EQ(d["cases"]["renumbered"], 0);
  EXPECT_EQ(d["cases"]["only_in_a"], json::array());
  EXPECT_EQ(d["cases"]["only_in_b"], json::array());
  EXPECT_EQ(d["cases"]["changed"], json::array());
  for (const char* by : {"department", "district", "category", "total"}) EXPECT_EQ(d["kpi"][by], json::array()) << by;
}

TEST(RunDiffTest, MissingSummaryLeavesDigestUncompared) {
  TempDir a, b;
  WriteRun(a, {MakeCase(kId1, "wl-1", kT0)}, DefaultKpi(), "sha256:abc");
  WriteRun(b, {MakeCase(kId1, "wl-1", kT0)});
  json d = DiffOk(a, b);
  EXPECT_TRUE(d["digest_equal"].is_null());
  EXPECT_TRUE(d["b"]["digest"].is_null());
  EXPECT_EQ(d["match"], true);  // the digest is not part of "match"
}

TEST(RunDiffMatchingTest, ExtraCaseInBRenumbersLaterCasesWithoutChanges) {
  TempDir a, b;
  WriteRun(a, {MakeCase(kId1, "wl-1", kT0), MakeCase(kId2, "wl-2", kT0 + 60 * kMinute),
               MakeCase(kId3, "wl-3", kT0 + 120 * kMinute)});
  // B opened one more case at 08:30, so A's 2 and 3 are B's 3 and 4.
  json extra = MakeCase(kId2, "wl-9", kT0 + 30 * kMinute);
  extra["priority"] = "urgent";
  extra["status"] = "registered";
  WriteRun(b, {MakeCase(kId1, "wl-1", kT0), extra, MakeCase(kId3, "wl-2", kT0 + 60 * kMinute),
               MakeCase(kId4, "wl-3", kT0 + 120 * kMinute)});
  json d = DiffOk(a, b);
  EXPECT_EQ(d["match"], false);
  EXPECT_EQ(d["cases"]["matched"], 3);
  EXPECT_EQ(d["cases"]["identical"], 3);
  EXPECT_EQ(d["cases"]["renumbered"], 2);
  EXPECT_EQ(d["cases"]["changed"], json::array());
  EXPECT_EQ(d["cases"]["only_in_a"], json::array());
  ASSERT_EQ(d["cases"]["only_in_b"].size(), 1u);
  const json& only = d["cases"]["only_in_b"][0];
  EXPECT_EQ(only["id"], kId2);
  EXPECT_EQ(only["priority"], "urgent");
  EXPECT_EQ(only["department"], "drainage");
  EXPECT_EQ(only["grid"], "430102001001");
  EXPECT_EQ(only["status"], "registered");
  EXPECT_EQ(only["first_event"], "2026-11-28T08:30:00Z");
  EXPECT_EQ(only["sla"]["close"], "met");
}

TEST(RunDiffMatchingTest, SameIdFromAnotherOriginIsNotTheSameCase) {
  TempDir a, b;
  WriteRun(a, {MakeCase(kId1, "wl-1", kT0)});
  WriteRun(b, {MakeCase(kId1, "wl-7", kT0 + 300 * kMinute)});
  json d = DiffOk(a, b);
  EXPECT_EQ(d["cases"]["matched"], 0);
  ASSERT_EQ(d["cases"]["only_in_a"].size(), 1u);
  ASSERT_EQ(d["cases"]["only_in_b"].size(), 1u);
  EXPECT_EQ(d["cases"]["only_in_a"][0]["id"], kId1);
  EXPECT_EQ(d["cases"]["only_in_b"][0]["id"], kId1);
}

// A case whose signals were cut differently (another debounce) has other
// signal ids; it still pairs by device and time, with the largest overlap.
TEST(RunDiffMatchingTest, DeviceAndTimePairsTheBestOverlap) {
  TempDir a, b;
  json in_a = MakeCase(kId1, "wl-1", kT0);
  in_a["last_signal"] = kT0 + 20 * kMinute;
  json overlap_15m = MakeCase(kId2, "wl-1", kT0 + 5 * kMinute);
  overlap_15m["last_signal"] = kT0 + 25 * kMinute;
  json overlap_1m = MakeCase(kId1, "wl-1", kT0 - kMinute);
  overlap_1m["last_signal"] = kT0 + kMinute;
  json far_away = MakeCase(kId3, "wl-1", kT0 + 31 * kMinute);  // 11 min after A's interval ends
  WriteRun(a, {in_a});
  WriteRun(b, {overlap_1m, overlap_15m, far_away});
  json d = DiffOk(a, b);
  EXPECT_EQ(d["cases"]["matched"], 1);
  ASSERT_EQ(d["cases"]["changed"].size(), 1u);  // the timelines start at other times
  EXPECT_EQ(d["cases"]["changed"][0]["a_id"], kId1);
  EXPECT_EQ(d["cases"]["changed"][0]["b_id"], kId2);
  EXPECT_EQ(d["cases"]["changed"][0]["match"], "device_time");
  ASSERT_EQ(d["cases"]["only_in_b"].size(), 2u);
  EXPECT_EQ(d["cases"]["only_in_b"][0]["id"], kId1);
  EXPECT_EQ(d["cases"]["only_in_b"][1]["id"], kId3);
}

TEST(RunDiffMatchingTest, DevicelessSignalsPairByGridCell) {
  TempDir a, b;
  json in_a = MakeCase(kId1, "", kT0);
  in_a["signals"][0]["id"] = "report-17";
  json in_b = MakeCase(kId2, "", kT0 + 5 * kMinute);
  in_b["signals"][0]["id"] = "report-18";
  json other_cell = MakeCase(kId1, "", kT0);
  other_cell["grid"] = "430102001002";
  other_cell["signals"][0]["id"] = "report-19";
  WriteRun(a, {in_a});
  WriteRun(b, {other_cell, in_b});
  json d = DiffOk(a, b);
  ASSERT_EQ(d["cases"]["changed"].size(), 1u);
  EXPECT_EQ(d["cases"]["changed"][0]["b_id"], kId2);
  EXPECT_EQ(d["cases"]["changed"][0]["match"], "device_time");
  ASSERT_EQ(d["cases"]["only_in_b"].size(), 1u);
  EXPECT_EQ(d["cases"]["only_in_b"][0]["grid"], "430102001002");
}

TEST(RunDiffCasesTest, ReportsPriorityRoutingAndSlaChanges) {
  TempDir a, b;
  json changed = MakeCase(kId1, "wl-1", kT0);
  changed["priority"] = "urgent";
  changed["department"] = "gas";
  changed["tasks"][0]["department"] = "gas";
  changed["close_clock"] = Clock("red", kT0 + 70 * kMinute);
  WriteRun(a, {MakeCase(kId1, "wl-1", kT0)});
  WriteRun(b, {changed});
  json d = DiffOk(a, b);
  EXPECT_EQ(d["match"], false);
  EXPECT_EQ(d["cases"]["identical"], 0);
  ASSERT_EQ(d["cases"]["changed"].size(), 1u);
  const json& c = d["cases"]["changed"][0];
  EXPECT_EQ(c["match"], "id");
  const json expected = json::parse(R"([
    {"field": "priority", "a": "high", "b": "urgent"},
    {"field": "department", "a": "drainage", "b": "gas"},
    {"field": "task_departments", "a": ["drainage"], "b": ["gas"]},
    {"field": "sla.close", "a": "met", "b": "breached"}])");
  EXPECT_EQ(c["changes"], expected);
  EXPECT_TRUE(c["timeline"].is_null());
}

TEST(RunDiffCasesTest, SlaOutcomeOfEachStage) {
  TempDir a, b;
  json c = MakeCase(kId1, "wl-1", kT0);
  json helper = c["tasks"][0];
  helper["lead"] = false;
  helper["department"] = "traffic";
  c["tasks"] = json::array({helper, c["tasks"][0]});  // the lead task is the second one
  c["tasks"][1]["acknowledge_clock"] = nullptr;
  c["tasks"][1]["arrive_clock"] = Clock("green", 0);
  c["tasks"][1]["handle_clock"] = Clock("yellow", kT0 + 50 * kMinute);
  c["verify_clock"] = Clock("yellow", 0);
  c["close_clock"] = Clock("red", 0);
  WriteRun(a, {c});
  WriteRun(b, {});
  json d = DiffOk(a, b);
  ASSERT_EQ(d["cases"]["only_in_a"].size(), 1u);
  EXPECT_EQ(d["cases"]["only_in_a"][0]["sla"],
            json::parse(R"j({"acknowledge": "none", "arrive": "open", "handle": "met (warned)",
                              "verify": "open (warned)", "close": "breached"})j"));
}

TEST(RunDiffCasesTest, TimelineDivergencePosition) {
  TempDir a, b;
  json warned = MakeCase(kId1, "wl-1", kT0);
  json& events = warned["timeline"];
  events.insert(events.begin() + 2, Event(kId1, 3, "city.case.sla_warning", kT0 + 2 * kMinute, "dispatched"));
  // The same events written without at_ms (an older output) are not a difference.
  json no_at_ms = MakeCase(kId2, "wl-2", kT0);
  for (json& e : no_at_ms["timeline"]) {
    e["at"] = FormatRfc3339Ms(e["at_ms"].get<int64_t>());
    e.erase("at_ms");
  }
  WriteRun(a, {MakeCase(kId1, "wl-1", kT0), MakeCase(kId2, "wl-2", kT0)});
  WriteRun(b, {warned, no_at_ms});
  json d = DiffOk(a, b);
  EXPECT_EQ(d["cases"]["identical"], 1);
  ASSERT_EQ(d["cases"]["changed"].size(), 1u);
  const json& c = d["cases"]["changed"][0];
  EXPECT_EQ(c["a_id"], kId1);
  EXPECT_EQ(c["changes"], json::array());
  const json& t = c["timeline"];
  EXPECT_EQ(t["position"], 3);
  EXPECT_EQ(t["a"]["action"], "city.case.acknowledged");
  EXPECT_EQ(t["b"]["action"], "city.case.sla_warning");
  EXPECT_EQ(t["b"]["at"], "2026-11-28T08:02:00Z");
  EXPECT_EQ(t["a_events"], 4);
  EXPECT_EQ(t["b_events"], 5);
  EXPECT_EQ(t["actions"], json::parse(R"({"city.case.sla_warning": {"a": 0, "b": 1, "delta": 1}})"));
}

TEST(RunDiffCasesTest, ShorterTimelineEndsFirst) {
  TempDir a, b;
  json still_open = MakeCase(kId1, "wl-1", kT0);
  still_open["timeline"].erase(3);
  WriteRun(a, {MakeCase(kId1, "wl-1", kT0)});
  WriteRun(b, {still_open});
  json d = DiffOk(a, b);
  ASSERT_EQ(d["cases"]["changed"].size(), 1u);
  const json& t = d["cases"]["changed"][0]["timeline"];
  EXPECT_EQ(t["position"], 4);
  EXPECT_EQ(t["a"]["action"], "city.case.closed");
  EXPECT_TRUE(t["b"].is_null());
}

TEST(RunDiffKpiTest, DepartmentDeltasAreNullSafe) {
  TempDir a, b;
  const std::vector<json> cases = {MakeCase(kId1, "wl-1", kT0)};
  WriteRun(a, cases, Kpi(json::array({KpiRow("drainage", 4, 0.8)})));
  json gas = {{"group", "gas"}, {"counts", {{"accepted", 2}}}, {"rates", {{"close_rate", nullptr}}}};
  WriteRun(b, cases, Kpi(json::array({KpiRow("drainage", 5, nullptr), gas})));
  json d = DiffOk(a, b);
  EXPECT_EQ(d["match"], false);
  EXPECT_EQ(d["cases"]["changed"], json::array());
  EXPECT_EQ(d["kpi"]["total"], json::array());
  EXPECT_EQ(d["kpi"]["district"], json::array());
  // drainage: the close-time count changed but not its mean or p90, so no
  // "times"; gas exists only in B: its counts read 0 in A, its null rate
  // equals A's absent one.
  EXPECT_EQ(d["kpi"]["department"], json::parse(R"([
    {"group": "drainage",
     "counts": {"closed": {"a": 4, "b": 5, "delta": 1}},
     "rates": {"close_rate": {"a": 0.8, "b": null, "delta": null}}},
    {"group": "gas",
     "counts": {"accepted": {"a": 0, "b": 2, "delta": 2}}}])"));
}

TEST(RunDiffKpiTest, ScoreAndTimeDeltas) {
  TempDir a, b;
  json kpi_b = DefaultKpi();
  json& row = kpi_b["by"]["department"]["rows"][0];
  row["score"] = 87.5;
  row["times"]["close"]["p90_ms"] = nullptr;
  row["times"]["close"]["mean_ms"] = 45 * kMinute;
  WriteRun(a, {}, DefaultKpi());
  WriteRun(b, {}, kpi_b);
  json d = DiffOk(a, b);
  EXPECT_EQ(d["match"], false);
  ASSERT_EQ(d["kpi"]["department"].size(), 1u);
  EXPECT_EQ(d["kpi"]["department"][0], json::parse(R"(
    {"group": "drainage",
     "score": {"a": 90.0, "b": 87.5, "delta": -2.5},
     "times": {"close": {"mean_ms": {"a": 3000000, "b": 2700000, "delta": -300000},
                         "p90_ms": {"a": 3300000, "b": null, "delta": null}}}})"));
}

TEST(RunDiffErrorsTest, MissingCasesFileNamesTheFile) {
  TempDir a, b;
  WriteRun(a, {MakeCase(kId1, "wl-1", kT0)});
  WriteFile(b.file("kpi.json"), DefaultKpi().dump());
  auto diff = DiffRuns(a.path(), b.path());
  ASSERT_FALSE(diff.ok());
  EXPECT_EQ(diff.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(diff.status().message(), b.file("cases.jsonl") + ": not found");
}

TEST(RunDiffErrorsTest, MissingDirectory) {
  TempDir a;
  WriteRun(a, {});
  auto diff = DiffRuns(a.path(), a.file("nope"));
  ASSERT_FALSE(diff.ok());
  EXPECT_EQ(diff.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(diff.status().message(), a.file("nope") + ": no such run directory");
}

TEST(RunDiffErrorsTest, GarbledCaseLineNamesFileAndLine) {
  TempDir a, b;
  WriteRun(a, {});
  WriteRun(b, {});
  WriteFile(b.file("cases.jsonl"), MakeCase(kId1, "wl-1", kT0).dump() + "\n\n{\"id\": \"CL-2\", oops}\n");
  auto diff = DiffRuns(a.path(), b.path());
  ASSERT_FALSE(diff.ok());
  EXPECT_EQ(diff.status().code(), StatusCode::kDataLoss);
  EXPECT_EQ(diff.status().message(), b.file("cases.jsonl") + ":3: not valid JSON (column 16)");
}

TEST(RunDiffErrorsTest, RecordWithoutIdOrDuplicateId) {
  TempDir a, b;
  WriteRun(a, {});
  WriteFile(a.file("cases.jsonl"), "{\"category\": \"flooding\"}\n");
  WriteRun(b, {MakeCase(kId1, "wl-1", kT0), MakeCase(kId1, "wl-2", kT0)});
  auto no_id = DiffRuns(a.path(), b.path());
  ASSERT_FALSE(no_id.ok());
  EXPECT_EQ(no_id.status().message(), a.file("cases.jsonl") + ":1: not a case (no \"id\")");
  auto duplicate = DiffRuns(b.path(), b.path());
  ASSERT_FALSE(duplicate.ok());
  EXPECT_EQ(duplicate.status().message(), b.file("cases.jsonl") + ":2: case " + kId1 + " already on line 1");
}

TEST(RunDiffErrorsTest, GarbledKpiNamesFileAndLine) {
  TempDir a, b;
  WriteRun(a, {});
  WriteRun(b, {});
  WriteFile(b.file("kpi.json"), "{\n  \"by\": {\n    \"department\": [,]\n}\n");
  auto diff = DiffRuns(a.path(), b.path());
  ASSERT_FALSE(diff.ok());
  EXPECT_EQ(diff.status().code(), StatusCode::kDataLoss);
  EXPECT_EQ(diff.status().message(), b.file("kpi.json") + ":3: not valid JSON (column 20)");
}

// The lines of text, for asserting on whole lines.
std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  size_t start = 0;
  for (size_t end; (end = text.find('\n', start)) != std::string::npos; start = end + 1) {
    lines.push_back(text.substr(start, end - start));
  }
  return lines;
}

bool HasLine(const std::string& text, const std::string& line) {
  for (const std::string& l : Lines(text)) {
    if (l == line) return true;
  }
  return false;
}

TEST(RunDiffTextTest, IdenticalRuns) {
  TempDir a, b;
  WriteRun(a, {MakeCase(kId1, "wl-1", kT0)}, DefaultKpi(), "sha256:abc");
  WriteRun(b, {MakeCase(kId1, "wl-1", kT0)}, DefaultKpi(), "sha256:abc");
  const std::string text = FormatDiffText(DiffOk(a, b));
  const std::vector<std::string> lines = Lines(text);
  ASSERT_GE(lines.size(), 3u) << text;
  EXPECT_EQ(lines[0], "cityloop diff: A " + a.path() + ", B " + b.path() + ": runs match");
  EXPECT_EQ(lines[1], "Digest: equal (sha256:abc)");
  EXPECT_EQ(lines[2], "Cases: A 1, B 1, matched 1 (1 identical), only in A 0, only in B 0, changed 0");
  EXPECT_TRUE(HasLine(text, "KPI: no differences")) << text;
  EXPECT_EQ(text.find("Changed:"), std::string::npos) << text;
}

TEST(RunDiffTextTest, DifferingRuns) {
  TempDir a, b;
  WriteRun(a, {MakeCase(kId1, "wl-1", kT0), MakeCase(kId2, "wl-2", kT0 + 60 * kMinute)},
           Kpi(json::array({KpiRow("drainage", 4, 0.8)})));
  json changed = MakeCase(kId1, "wl-1", kT0);
  changed["priority"] = "urgent";
  changed["department"] = "gas";
  changed["close_clock"] = Clock("red", 0);
  changed["timeline"][2] = Event(kId1, 3, "city.case.sla_warning", kT0 + 2 * kMinute, "dispatched");
  json extra = MakeCase(kId2, "wl-9", kT0 + 14 * kMinute + 3000);
  json renumbered = MakeCase(kId3, "wl-2", kT0 + 60 * kMinute);
  renumbered["status"] = "handled";
  json kpi_b = Kpi(json::array({KpiRow("drainage", 5, 0.857)}));
  kpi_b["by"]["department"]["rows"][0]["times"]["close"]["mean_ms"] = 52.5 * kMinute;
  WriteRun(b, {changed, extra, renumbered}, kpi_b);

  const std::string text = FormatDiffText(DiffOk(a, b));
  EXPECT_TRUE(HasLine(text, "cityloop diff: A " + a.path() + ", B " + b.path() + ": runs differ")) << text;
  EXPECT_TRUE(HasLine(text, "Digest: not compared (no summary.json digest in A)")) << text;
  EXPECT_TRUE(HasLine(text, "Cases: A 2, B 3, matched 2 (0 identical, 1 renumbered), only in A 0, only in B 1, "
                            "changed 2"))
      << text;
  EXPECT_TRUE(HasLine(text, "Only in B:")) << text;
  EXPECT_TRUE(
      HasLine(text, "  CL-20261128-000002  flooding (high) drainage  grid 430102001001  2026-11-28T08:14:03Z  closed"))
      << text;
  EXPECT_TRUE(HasLine(text, "Changed:")) << text;
  EXPECT_TRUE(HasLine(text, "  CL-20261128-000001: priority high → urgent; department drainage → gas; "
                            "close SLA met → breached; timeline diverges at #3 (city.case.acknowledged vs "
                            "city.case.sla_warning), city.case.acknowledged 1 → 0, city.case.sla_warning 0 → 1"))
      << text;
  EXPECT_TRUE(HasLine(text, "  CL-20261128-000002 ↔ CL-20261128-000003 (by signal): status closed → handled"))
      << text;
  EXPECT_TRUE(HasLine(text, "KPI deltas by department:")) << text;
  EXPECT_TRUE(HasLine(text, "  department  metric           A       B        Δ")) << text;
  EXPECT_TRUE(HasLine(text, "  drainage    closed           4       5       +1")) << text;
  EXPECT_TRUE(HasLine(text, "  drainage    close_rate   80.0%   85.7%  +5.7 pp")) << text;
  EXPECT_TRUE(HasLine(text, "  drainage    close mean  50m00s  52m30s   +2m30s")) << text;
  EXPECT_EQ(text.find("KPI deltas, total:"), std::string::npos) << text;
}

TEST(RunDiffTextTest, LongListsAreCapped) {
  TempDir a, b;
  std::vector<json> cases;
  for (int i = 1; i <= 5; ++i) {
    cases.push_back(MakeCase("CL-20261128-00000" + std::to_string(i), "wl-" + std::to_string(i), kT0 + i * kMinute));
  }
  WriteRun(a, {});
  WriteRun(b, cases);
  const std::string text = FormatDiffText(DiffOk(a, b), DiffOptions{.max_listed = 2});
  EXPECT_TRUE(HasLine(text, "  … and 3 more")) << text;
  EXPECT_NE(text.find("CL-20261128-000002"), std::string::npos);
  EXPECT_EQ(text.find("CL-20261128-000003"), std::string::npos) << text;
}

}  // namespace
}  // namespace cityloop::replay
