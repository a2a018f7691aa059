// The REST API over a fake backend: every endpoint, its parameters and
// errors, action outcomes, CORS, limits, metrics and the web console files.
#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <chrono>
#include <future>
#include <string>
#include <thread>

#include "console/api.h"
#include "tests/console/api_fixture.h"

namespace cityloop::console::testing {
namespace {

using nlohmann::json;

class ApiTest : public ApiFixture {
 protected:
  void SetUp() override {
    backend_.AddCase("CL-20261128-000001", "furong", "dispatched", {{"updated", 1000}});
    backend_.AddCase("CL-20261128-000002", "yuelu", "closed", {{"updated", 2000}, {"department", "municipal"}});
    backend_.AddCase("CL-20261128-000003", "furong", "acknowledged",
                     {{"updated", 3000}, {"category", "manhole_cover"}, {"department", "municipal"}});
    backend_.AddCase("CL-20261128-000004", "furong", "invalid", {{"updated", 4000}});
    backend_.AddCase("CL-20261128-000005", "yuelu", "detected", {{"updated", 5000}});
  }

  std::vector<std::string> Ids(const Response& r) {
    std::vector<std::string> ids;
    const json j = r.json();
    EXPECT_TRUE(j.is_object() && j.contains("cases")) << r.status << " " << r.body;
    if (!j.is_object()) return ids;
    for (const auto& c : j.value("cases", json::array())) ids.push_back(c.value("id", ""));
    return ids;
  }
};

// ---- whoami and authentication ----------------------------------------------------

TEST_F(ApiTest, WhoamiDescribesTheToken) {
  Start();
  auto r = Get("/api/v1/whoami", kOpFurong);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.json(), json({{"name", "op-furong"}, {"role", "operator"}, {"districts", {"furong"}}}));
  EXPECT_EQ(r.header("Content-Type"), "application/json");
  EXPECT_EQ(r.header("Cache-Control"), "no-store");
  EXPECT_EQ(r.header("X-Content-Type-Options"), "nosniff");
}

TEST_F(ApiTest, MissingMalformedAndUnknownTokensAre401) {
  Start();
  auto none = Get("/api/v1/whoami");
  EXPECT_EQ(none.status, 401);
  EXPECT_EQ(none.error_code(), "unauthorized");
  EXPECT_EQ(none.header("WWW-Authenticate"), "Bearer realm=\"cityloop\"");

  auto bad = Get("/api/v1/whoami", kBadToken);
  EXPECT_EQ(bad.status, 401);
  EXPECT_NE(bad.header("WWW-Authenticate").find("invalid_token"), std::string::npos);

  for (const char* header : {"Basic dXNlcjpwYXNz", "Bearer", "Bearer ", "Token abc", "Bearer a b", "Bearer a,b"}) {
    Conn c(port());
    auto r = c.Request("GET", "/api/v1/whoami", {{"Authorization", header}});
    EXPECT_EQ(r.status, 401) << header;
  }
  // The scheme is case-insensitive.
  Conn c(port());
  EXPECT_EQ(c.Request("GET", "/api/v1/whoami", {{"Authorization", std::string("bearer ") + kAdmin}}).status, 200);
}

TEST_F(ApiTest, TokenInTheQueryIsRefused) {
  Start();
  auto r = Get(std::string("/api/v1/cases?access_token=") + kAdmin, kAdmin);
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.json()["error"]["parameter"], "access_token");
  EXPECT_NE(r.json()["error"]["message"].get<std::string>().find("Authorization header"), std::string::npos);
}

TEST_F(ApiTest, NoTokensConfiguredRefusesEveryApiCall) {
  options_.tokens.clear();
  Start();
  EXPECT_EQ(Get("/api/v1/whoami", kAdmin).status, 401);
  EXPECT_EQ(Get("/livez").status, 200);
}

TEST_F(ApiTest, BadTokenTableFailsStart) {
  options_.tokens[0].sha256 = "zz";
  auto s = ApiServer::Start(backend_, options_, metrics_, "127.0.0.1:0");
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), StatusCode::kInvalidArgument);
}

// ---- GET /api/v1/cases ----------------------------------------------------------------

TEST_F(ApiTest, ListsEveryCaseInIdOrder) {
  Start();
  auto r = Get("/api/v1/cases", kAdmin);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(Ids(r), (std::vector<std::string>{"CL-20261128-000001", "CL-20261128-000002", "CL-20261128-000003",
                                              "CL-20261128-000004", "CL-20261128-000005"}));
  EXPECT_TRUE(r.json()["next_cursor"].is_null());
  EXPECT_FALSE(r.json()["cases"][0].contains("signals"));
}

TEST_F(ApiTest, ListFilters) {
  Start();
  EXPECT_EQ(Ids(Get("/api/v1/cases?status=open", kAdmin)),
            (std::vector<std::string>{"CL-20261128-000001", "CL-20261128-000003", "CL-20261128-000005"}));
  EXPECT_EQ(Ids(Get("/api/v1/cases?status=closed", kAdmin)), (std::vector<std::string>{"CL-20261128-000002"}));
  EXPECT_EQ(Ids(Get("/api/v1/cases?dept=municipal", kAdmin)),
            (std::vector<std::string>{"CL-20261128-000002", "CL-20261128-000003"}));
  EXPECT_EQ(Ids(Get("/api/v1/cases?category=manhole_cover", kAdmin)),
            (std::vector<std::string>{"CL-20261128-000003"}));
  EXPECT_EQ(Ids(Get("/api/v1/cases?grid=430104001001", kAdmin)),
            (std::vector<std::string>{"CL-20261128-000002", "CL-20261128-000005"}));
  EXPECT_EQ(Ids(Get("/api/v1/cases?district=yuelu&status=open", kAdmin)),
            (std::vector<std::string>{"CL-20261128-000005"}));
  EXPECT_EQ(Ids(Get("/api/v1/cases?since=3000", kAdmin)),
            (std::vector<std::string>{"CL-20261128-000003", "CL-20261128-000004", "CL-20261128-000005"}));
  // RFC 3339: 1970-01-01T00:00:04Z is 4000 ms.
  EXPECT_EQ(Ids(Get("/api/v1/cases?since=1970-01-01T00:00:04Z", kAdmin)),
            (std::vector<std::string>{"CL-20261128-000004", "CL-20261128-000005"}));
}

TEST_F(ApiTest, DistrictScopedTokensSeeOnlyTheirDistricts) {
  Start();
  EXPECT_EQ(Ids(Get("/api/v1/cases", kOpFurong)),
            (std::vector<std::string>{"CL-20261128-000001", "CL-20261128-000003", "CL-20261128-000004"}));
  auto foreign = Get("/api/v1/cases?district=yuelu", kOpFurong);
  EXPECT_EQ(foreign.status, 403);
  EXPECT_EQ(foreign.error_code(), "forbidden");
  // A foreign case is not found rather than forbidden: its existence does not leak.
  auto detail = Get("/api/v1/cases/CL-20261128-000002", kOpFurong);
  EXPECT_EQ(detail.status, 404);
  EXPECT_EQ(Get("/api/v1/cases/CL-20261128-000002", kOperator).status, 200);
}

TEST_F(ApiTest, CursorPagesWalkEveryCaseOnce) {
  for (int i = 10; i < 47; ++i) backend_.AddCase("CL-20261129-0000" + std::to_string(i), "furong", "dispatched");
  Start();
  std::vector<std::string> all;
  std::string target = "/api/v1/cases?limit=7&status=open&district=furong";
  int pages = 0;
  while (true) {
    auto r = Get(target, kAdmin);
    ASSERT_EQ(r.status, 200) << r.body;
    auto page = Ids(r);
    EXPECT_LE(page.size(), 7u);
    all.insert(all.end(), page.begin(), page.end());
    ++pages;
    ASSERT_LT(pages, 20);
    const json next = r.json()["next_cursor"];
    if (next.is_null()) break;
    ASSERT_TRUE(next.is_string());
    target = "/api/v1/cases?limit=7&status=open&district=furong&cursor=" + next.get<std::string>();
  }
  // 37 new open furong cases plus CL-...01 and CL-...03.
  EXPECT_EQ(all.size(), 39u);
  EXPECT_TRUE(std::is_sorted(all.begin(), all.end()));
  EXPECT_EQ(std::adjacent_find(all.begin(), all.end()), all.end());
  EXPECT_EQ(pages, 6);  // 5 full pages of 7, one of 4
}

TEST_F(ApiTest, AFullLastPageEndsWithANullCursor) {
  Start();
  auto r = Get("/api/v1/cases?limit=5", kAdmin);
  EXPECT_EQ(Ids(r).size(), 5u);
  EXPECT_TRUE(r.json()["next_cursor"].is_null());
  auto first = Get("/api/v1/cases?limit=4", kAdmin);
  ASSERT_TRUE(first.json()["next_cursor"].is_string());
  auto rest = Get("/api/v1/cases?limit=4&cursor=" + first.json()["next_cursor"].get<std::string>(), kAdmin);
  EXPECT_EQ(Ids(rest), (std::vector<std::string>{"CL-20261128-000005"}));
  EXPECT_TRUE(rest.json()["next_cursor"].is_null());
}

TEST_F(ApiTest, BadListParametersAre400NamingThem) {
  Start();
  struct Bad {
    std::string query, param;
  };
  for (const Bad& b : std::vector<Bad>{{"status=nope", "status"},
                                       {"limit=0", "limit"},
                                       {"limit=501", "limit"},
                                       {"limit=ten", "limit"},
                                       {"limit=-1", "limit"},
                                       {"since=yesterday", "since"},
                                       {"cursor=!!!", "cursor"},
                                       {"cursor=Zm9vYmFy", "cursor"},  // base64 of "foobar": no prefix
                                       {"dept=a%20b", "dept"},
                                       {"grid=" + std::string(200, 'x'), "grid"},
                                       {"category=" + std::string(300, 'x'), "category"},
                                       {"stauts=open", "stauts"}}) {
    auto r = Get("/api/v1/cases?" + b.query, kAdmin);
    EXPECT_EQ(r.status, 400) << b.query << ": " << r.body;
    EXPECT_EQ(r.error_code(), "bad_parameter") << b.query;
    EXPECT_EQ(r.json()["error"]["parameter"], b.param) << b.query;
    EXPECT_NE(r.json()["error"]["message"].get<std::string>().find(b.param), std::string::npos) << b.query;
  }
}

TEST_F(ApiTest, BadPercentEncodingIs400) {
  Start();
  for (const char* target : {"/api/v1/cases?status=%zz", "/api/v1/cases?status=%4", "/api/v1/cases/CL%", "/api/v1/cases/%00x"}) {
    auto r = Get(target, kAdmin);
    EXPECT_EQ(r.status, 400) << target;
    EXPECT_EQ(r.error_code(), "bad_request") << target;
  }
}

// ---- GET /api/v1/cases/{id} --------------------------------------------------------------

TEST_F(ApiTest, CaseDetailHasTimelineSnapshotsAndRecommendedUnits) {
  backend_.AddCase("CL-20261128-000009", "furong", "dispatched",
                   {{"recommended_unit", "drain-07"},
                    {"signals",
                     {{{"id", "s1"}, {"attributes", {{"snapshot", "cam-1:100"}, {"snapshot_annotated", "cam-1:100a"}}}},
                      {{"id", "s2"}, {"attributes", {{"snapshot", "cam-1:100"}, {"label", "vehicle"}}}},
                      {{"id", "s3"}, {"attributes", json::object()}}}}});
  const json old_order{{"seq", 2}, {"action", "city.dispatch.order"}, {"detail", {{"candidates", {{{"unit_id", "x-1"}}}}}},
                       {"case", {{"id", "old"}}}};
  const json new_order{{"seq", 4},
                       {"action", "city.dispatch.order"},
                       {"actor", ""},
                       {"detail",
                        {{"recommended_unit", {{"unit_id", "drain-07"}}},
                         {"candidates",
                          {{{"unit_id", "drain-07"}, {"name", "芙蓉排水七队"}, {"distance_m", 800}, {"eta_s", 120}},
                           {{"unit_id", "drain-12"}, {"name", "机动队"}, {"distance_m", 1500}, {"eta_s", 260}}}}}},
                       {"case", {{"id", "CL-20261128-000009"}}}};
  backend_.SetTimeline("CL-20261128-000009",
                       {json{{"seq", 1}, {"action", "city.case.opened"}, {"case", json::object()}}, old_order,
                        json{{"seq", 3}, {"action", "city.case.dispatched"}}, new_order});
  Start();
  auto r = Get("/api/v1/cases/CL-20261128-000009", kViewer);
  ASSERT_EQ(r.status, 200) << r.body;
  const json j = r.json();
  EXPECT_EQ(j["case"]["id"], "CL-20261128-000009");
  EXPECT_EQ(j["case"]["signals"].size(), 3u);
  ASSERT_EQ(j["timeline"].size(), 4u);
  for (const auto& e : j["timeline"]) EXPECT_FALSE(e.contains("case")) << e;
  EXPECT_EQ(j["timeline"][3]["seq"], 4);
  EXPECT_EQ(j["snapshots"], json({"cam-1:100", "cam-1:100a"}));
  ASSERT_EQ(j["recommended_units"].size(), 2u);
  EXPECT_EQ(j["recommended_units"][0]["unit_id"], "drain-07");
  EXPECT_EQ(j["recommended_units"][0]["recommended"], true);
  EXPECT_EQ(j["recommended_units"][0]["eta_s"], 120);
  EXPECT_EQ(j["recommended_units"][1]["unit_id"], "drain-12");
  EXPECT_EQ(j["recommended_units"][1]["recommended"], false);
}

TEST_F(ApiTest, CaseDetailWithoutOrders) {
  Start();
  auto r = Get("/api/v1/cases/CL-20261128-000001", kViewer);
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.json()["timeline"], json::array());
  EXPECT_EQ(r.json()["snapshots"], json::array());
  EXPECT_EQ(r.json()["recommended_units"], json::array());
}

TEST_F(ApiTest, UnknownCaseIs404AndBadIdIs400) {
  Start();
  auto r = Get("/api/v1/cases/CL-nope", kViewer);
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(r.error_code(), "not_found");
  auto bad = Get("/api/v1/cases/CL%20x", kViewer);
  EXPECT_EQ(bad.status, 400);
  EXPECT_EQ(bad.json()["error"]["parameter"], "id");
  auto extra = Get("/api/v1/cases/CL-20261128-000001?x=1", kViewer);
  EXPECT_EQ(extra.status, 400);
}

// ---- POST /api/v1/cases/{id}/actions ---------------------------------------------------------

TEST_F(ApiTest, AppliedActionReturnsTheCase) {
  Start();
  auto r = Act("CL-20261128-000001", {{"action", "acknowledge"}, {"note", "on it"}}, kOpFurong);
  ASSERT_EQ(r.status, 200) << r.body;
  const json j = r.json();
  EXPECT_EQ(j["status"], "applied");
  EXPECT_EQ(j["case"]["status"], "acknowledged");
  const std::string id = j["command_id"];
  EXPECT_EQ(j["case"]["recent_commands"].back(), id);

  auto sent = backend_.submitted();
  ASSERT_EQ(sent.size(), 1u);
  const json& cmd = sent[0];
  EXPECT_EQ(cmd["command_id"], id);
  EXPECT_EQ(cmd["case_id"], "CL-20261128-000001");
  EXPECT_EQ(cmd["action"], "acknowledge");
  EXPECT_EQ(cmd["actor"], "op-furong");
  EXPECT_EQ(cmd["role"], "operator");
  EXPECT_EQ(cmd["note"], "on it");
  const int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
  EXPECT_LE(std::abs(cmd["ts"].get<int64_t>() - now), 60000);
  EXPECT_EQ(Counter("cityloop_api_commands_total", {{"outcome", "applied"}}), 1);

  // Every command gets its own id.
  auto again = Act("CL-20261128-000001", {{"action", "acknowledge"}}, kOpFurong);
  ASSERT_EQ(again.status, 200);
  EXPECT_NE(again.json()["command_id"], id);
}

TEST_F(ApiTest, ActionParametersReachTheCommand) {
  Start();
  ASSERT_EQ(Act("CL-20261128-000001", {{"action", "reassign"}, {"department", "municipal"}}, kOperator).status, 200);
  ASSERT_EQ(Act("CL-20261128-000001", {{"action", "extend"}, {"duration", "2h"}}, kOperator).status, 200);
  ASSERT_EQ(Act("CL-20261128-000001", {{"action", "extend"}, {"duration", 600000}}, kOperator).status, 200);
  ASSERT_EQ(Act("CL-20261128-000001", {{"action", "enroute"}, {"unit_id", "drain-07"}}, kOperator).status, 200);
  ASSERT_EQ(Act("CL-20261128-000001", {{"action", "merge"}, {"into", "CL-20261128-000003"}}, kAdmin).status, 200);
  ASSERT_EQ(Act("CL-20261128-000001", {{"action", "acknowledge"}, {"command_id", "client-42"}}, kOperator).status, 200);
  auto sent = backend_.submitted();
  ASSERT_EQ(sent.size(), 6u);
  EXPECT_EQ(sent[0]["department"], "municipal");
  EXPECT_EQ(sent[1]["duration"], "2h");
  EXPECT_EQ(sent[2]["duration"], 600000);
  EXPECT_EQ(sent[3]["unit_id"], "drain-07");
  EXPECT_EQ(sent[4]["into"], "CL-20261128-000003");
  EXPECT_EQ(sent[4]["role"], "admin");
  EXPECT_EQ(sent[5]["command_id"], "client-42");
  EXPECT_FALSE(sent[0].contains("note"));
}

TEST_F(ApiTest, RejectedActionIs409WithTheEnginesReason) {
  backend_.SetEngine(FakeBackend::Engine::kReject);
  Start();
  auto r = Act("CL-20261128-000001", {{"action", "acknowledge"}}, kOperator);
  ASSERT_EQ(r.status, 409) << r.body;
  const json e = r.json()["error"];
  EXPECT_EQ(e["code"], "command_rejected");
  EXPECT_EQ(e["reason"], "status");
  EXPECT_EQ(e["message"], "acknowledge is not allowed in status closed");
  EXPECT_EQ(e["command_id"], backend_.submitted().at(0)["command_id"]);
  EXPECT_EQ(Counter("cityloop_api_commands_total", {{"outcome", "rejected"}}), 1);
}

TEST_F(ApiTest, RejectionOfAnotherCommandDoesNotAnswer) {
  options_.action_wait_ms = 300;
  backend_.SetEngine(FakeBackend::Engine::kSilent);
  Start();
  std::promise<Response> done;
  std::thread t([&] { done.set_value(Act("CL-20261128-000001", {{"action", "acknowledge"}}, kOperator)); });
  ASSERT_TRUE(::cityloop::testing::WaitFor([&] { return backend_.submitted().size() == 1; }));
  backend_.Emit("city.command.rejected", "CL-20261128-000001",
                {{"command_id", "someone-else"}, {"reason", "status"}, {"message", "no"}});
  backend_.Emit("city.case.acknowledged", "CL-20261128-000001", FakeBackend::CaseData("CL-20261128-000001", "furong"));
  auto r = done.get_future().get();
  t.join();
  EXPECT_EQ(r.status, 202) << r.body;
}

TEST_F(ApiTest, SilentEngineGives202Pending) {
  options_.action_wait_ms = 200;
  backend_.SetEngine(FakeBackend::Engine::kSilent);
  Start();
  auto r = Act("CL-20261128-000001", {{"action", "acknowledge"}}, kOperator);
  ASSERT_EQ(r.status, 202) << r.body;
  EXPECT_EQ(r.json()["status"], "pending");
  EXPECT_EQ(r.json()["command_id"], backend_.submitted().at(0)["command_id"]);
  EXPECT_EQ(Counter("cityloop_api_commands_total", {{"outcome", "pending"}}), 1);
}

TEST_F(ApiTest, SubmitFailureIs503) {
  backend_.SetEngine(FakeBackend::Engine::kFail);
  Start();
  auto r = Act("CL-20261128-000001", {{"action", "acknowledge"}}, kOperator);
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(r.error_code(), "unavailable");
  EXPECT_EQ(r.header("Retry-After"), "5");
}

TEST_F(ApiTest, WaitingActionHoldsNoServerThread) {
  options_.threads = 1;
  options_.action_wait_ms = 5000;
  backend_.SetEngine(FakeBackend::Engine::kSilent);
  Start();
  std::promise<Response> done;
  std::atomic<bool> answered{false};
  std::thread t([&] {
    done.set_value(Act("CL-20261128-000001", {{"action", "acknowledge"}}, kOperator));
    answered = true;
  });
  ASSERT_TRUE(::cityloop::testing::WaitFor([&] { return backend_.submitted().size() == 1; }));
  // One server thread, and the action is waiting: other requests are still served.
  EXPECT_EQ(Get("/livez").status, 200);
  EXPECT_EQ(Get("/api/v1/whoami", kViewer).status, 200);
  EXPECT_FALSE(answered.load());
  // The engine applies it late: the waiting action sees it.
  const std::string id = backend_.submitted()[0]["command_id"];
  {
    // Apply as the engine would: the case takes the command, then its event is published.
    json c = *backend_.GetCase("CL-20261128-000001").value();
    c["recent_commands"].push_back(id);
    backend_.AddCase("CL-20261128-000001", "furong", "acknowledged", c);
  }
  backend_.Emit("city.case.acknowledged", "CL-20261128-000001", FakeBackend::CaseData("CL-20261128-000001", "furong"));
  auto r = done.get_future().get();
  t.join();
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.json()["command_id"], id);
}

TEST_F(ApiTest, ActionValidation) {
  Start();
  struct Bad {
    std::string body;
    int status;
    std::string code, param;
  };
  const std::string id = "CL-20261128-000001";
  for (const Bad& b : std::vector<Bad>{
           {"{not json", 400, "bad_json", ""},
           {"[1,2]", 400, "bad_json", ""},
           {"{}", 400, "bad_parameter", "action"},
           {R"({"action": 3})", 400, "bad_parameter", "action"},
           {R"({"action": "fly"})", 400, "bad_parameter", "action"},
           {R"({"action": "acknowledge", "colour": "red"})", 400, "bad_parameter", "colour"},
           {R"({"action": "acknowledge", "note": 5})", 400, "bad_parameter", "note"},
           {R"({"action": "acknowledge", "note": ")" + std::string(5000, 'n') + R"("})", 400, "bad_parameter", "note"},
           {R"({"action": "reassign"})", 400, "bad_parameter", "department"},
           {R"({"action": "reassign", "department": "a b"})", 400, "bad_parameter", "department"},
           {R"({"action": "merge"})", 400, "bad_parameter", "into"},
           {R"({"action": "merge", "into": "CL-20261128-000001"})", 400, "bad_parameter", "into"},
           {R"({"action": "merge", "into": "CL-missing"})", 400, "bad_parameter", "into"},
           {R"({"action": "extend"})", 400, "bad_parameter", "duration"},
           {R"({"action": "extend", "duration": "soon"})", 400, "bad_parameter", "duration"},
           {R"({"action": "extend", "duration": -5})", 400, "bad_parameter", "duration"},
           {R"({"action": "extend", "duration": "400d"})", 400, "bad_parameter", "duration"},
           {R"({"action": "extend", "duration": 1.5})", 400, "bad_parameter", "duration"},
           {R"({"action": "enroute", "unit_id": "a/b"})", 400, "bad_parameter", "unit_id"},
       }) {
    auto r = Post("/api/v1/cases/" + id + "/actions", b.body, kAdmin);
    EXPECT_EQ(r.status, b.status) << b.body << " -> " << r.body;
    EXPECT_EQ(r.error_code(), b.code) << b.body;
    if (!b.param.empty()) {
      EXPECT_EQ(r.json()["error"]["parameter"], b.param) << b.body;
    }
  }
  EXPECT_TRUE(backend_.submitted().empty());
  // Merge into a foreign district's case is as if it did not exist.
  auto foreign = Act(id, {{"action", "merge"}, {"into", "CL-20261128-000002"}}, kSupervisor);
  EXPECT_EQ(foreign.status, 400);
  EXPECT_EQ(Act("CL-missing", {{"action", "acknowledge"}}, kAdmin).status, 404);
}

TEST_F(ApiTest, ActionNeedsJsonContentType) {
  Start();
  const std::string body = R"({"action":"acknowledge"})";
  auto r = Post("/api/v1/cases/CL-20261128-000001/actions", body, kAdmin, {{"Content-Type", "text/plain"}});
  EXPECT_EQ(r.status, 415);
  EXPECT_EQ(r.error_code(), "unsupported_media_type");
  auto none = Post("/api/v1/cases/CL-20261128-000001/actions", body, kAdmin, {});
  EXPECT_EQ(none.status, 415);
  auto charset = Post("/api/v1/cases/CL-20261128-000001/actions", body, kAdmin,
                      {{"Content-Type", "Application/JSON; charset=utf-8"}});
  EXPECT_EQ(charset.status, 200) << charset.body;
}

TEST_F(ApiTest, SupervisorActions) {
  backend_.AddCase("CL-20261128-000010", "furong", "handled", {{"reworks", 0}});
  backend_.AddCase("CL-20261128-000011", "furong", "handled", {{"reworks", 1}});
  Start();
  for (const char* action : {"suspend", "defer", "resume", "invalidate", "reopen"}) {
    auto r = Act("CL-20261128-000001", {{"action", action}}, kOperator);
    EXPECT_EQ(r.status, 403) << action;
    EXPECT_NE(r.json()["error"]["message"].get<std::string>().find("supervisor"), std::string::npos) << action;
    EXPECT_EQ(Act("CL-20261128-000001", {{"action", action}}, kSupervisor).status, 200) << action;
  }
  EXPECT_EQ(Act("CL-20261128-000001", {{"action", "merge"}, {"into", "CL-20261128-000003"}}, kOperator).status, 403);
  // close: an operator may close a case that was never reworked; after a failed check it takes a supervisor.
  EXPECT_EQ(Act("CL-20261128-000010", {{"action", "close"}}, kOperator).status, 200);
  EXPECT_EQ(Act("CL-20261128-000011", {{"action", "close"}}, kOperator).status, 403);
  EXPECT_EQ(Act("CL-20261128-000011", {{"action", "close"}}, kSupervisor).status, 200);
  EXPECT_EQ(Act("CL-20261128-000011", {{"action", "close"}}, kAdmin).status, 200);
}

TEST_F(ApiTest, ViewerCannotActAndOperatorOnlyInItsDistricts) {
  Start();
  auto viewer = Act("CL-20261128-000001", {{"action", "acknowledge"}}, kViewer);
  EXPECT_EQ(viewer.status, 403);
  EXPECT_EQ(Act("CL-20261128-000005", {{"action", "acknowledge"}}, kOpFurong).status, 404);
  EXPECT_EQ(Act("CL-20261128-000005", {{"action", "acknowledge"}}, kOperator).status, 200);
  ASSERT_EQ(backend_.submitted().size(), 1u);
  EXPECT_EQ(backend_.submitted()[0]["actor"], "operator");
}

// ---- KPI -------------------------------------------------------------------------------------

TEST_F(ApiTest, KpiDefaultsToTheLast30CityDays) {
  Start();
  auto r = Get("/api/v1/kpi", kViewer);
  ASSERT_EQ(r.status, 200) << r.body;
  auto calls = backend_.kpi_calls();
  ASSERT_EQ(calls.size(), 1u);
  EXPECT_EQ(calls[0].group, "department");
  const int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
  const int64_t today = (now + 480 * 60000) / 86400000;  // the fake city is at +08:00
  EXPECT_NEAR(static_cast<double>(calls[0].to), static_cast<double>(today), 1.0);
  EXPECT_EQ(calls[0].to - calls[0].from, 29);
}

TEST_F(ApiTest, KpiGroupsAndDates) {
  Start();
  ASSERT_EQ(Get("/api/v1/kpi?group_by=dept&from=2026-11-01&to=2026-11-30", kViewer).status, 200);
  ASSERT_EQ(Get("/api/v1/kpi?group_by=grid&from=2024-02-29&to=2024-02-29", kViewer).status, 200);
  ASSERT_EQ(Get("/api/v1/kpi?group_by=total&from=1970-01-01&to=1970-01-10", kViewer).status, 200);
  auto calls = backend_.kpi_calls();
  ASSERT_EQ(calls.size(), 3u);
  EXPECT_EQ(calls[0].group, "department");
  EXPECT_EQ(calls[0].from, 20758);  // 2026-11-01
  EXPECT_EQ(calls[0].to, 20787);
  EXPECT_EQ(calls[1].group, "cell");
  EXPECT_EQ(calls[1].from, 19782);  // 2024-02-29
  EXPECT_EQ(calls[2].from, 0);
  EXPECT_EQ(calls[2].to, 9);
  for (const char* g : {"department", "district", "cell", "category", "day"}) {
    EXPECT_EQ(Get(std::string("/api/v1/kpi?group_by=") + g, kViewer).status, 200) << g;
  }
}

TEST_F(ApiTest, BadKpiParameters) {
  Start();
  struct Bad {
    std::string query, param;
  };
  for (const Bad& b : std::vector<Bad>{{"group_by=week", "group_by"},
                                       {"from=2026-13-01", "from"},
                                       {"from=2026-02-30", "from"},
                                       {"to=2025-02-29", "to"},
                                       {"from=26-11-01", "from"},
                                       {"to=2026/11/01", "to"},
                                       {"from=1969-12-31", "from"},
                                       {"from=2026-11-02&to=2026-11-01", "from"},
                                       {"from=2020-01-01&to=2026-01-01", "from"},
                                       {"group=dept", "group"}}) {
    auto r = Get("/api/v1/kpi?" + b.query, kViewer);
    EXPECT_EQ(r.status, 400) << b.query << ": " << r.body;
    EXPECT_EQ(r.json()["error"]["parameter"], b.param) << b.query;
  }
  EXPECT_TRUE(backend_.kpi_calls().empty());
}

TEST_F(ApiTest, KpiForDistrictScopedTokens) {
  Start();
  auto by_district = Get("/api/v1/kpi?group_by=district", kOpFurong);
  ASSERT_EQ(by_district.status, 200);
  ASSERT_EQ(by_district.json()["rows"].size(), 1u);
  EXPECT_EQ(by_district.json()["rows"][0]["group"], "furong");
  auto by_grid = Get("/api/v1/kpi?group_by=grid", kOpFurong);
  ASSERT_EQ(by_grid.json()["rows"].size(), 1u);
  EXPECT_EQ(by_grid.json()["rows"][0]["group"], "430102001001");
  EXPECT_EQ(Get("/api/v1/kpi?group_by=category", kOpFurong).status, 403);
  EXPECT_EQ(Get("/api/v1/kpi?group_by=district", kViewer).json()["rows"].size(), 2u);
}

TEST_F(ApiTest, BackendErrorIs500) {
  backend_.SetKpiError(true);
  Start();
  auto r = Get("/api/v1/kpi", kViewer);
  EXPECT_EQ(r.status, 500);
  EXPECT_EQ(r.error_code(), "internal");
}

// ---- units, city, snapshots -----------------------------------------------------------------------

TEST_F(ApiTest, UnitsCityAndSnapshots) {
  backend_.SetUnits(json::array({{{"id", "drain-07"}, {"department", "drainage"}, {"status", "available"}}}));
  backend_.AddSnapshot("cam-1:100", std::string("\xff\xd8\xff\xe0jpeg", 8));
  Start();
  auto units = Get("/api/v1/units", kViewer);
  ASSERT_EQ(units.status, 200);
  EXPECT_EQ(units.json()["units"][0]["id"], "drain-07");

  auto city = Get("/api/v1/city", kViewer);
  ASSERT_EQ(city.status, 200);
  EXPECT_EQ(city.json()["utc_offset_minutes"], 480);
  EXPECT_EQ(city.json()["districts"].size(), 2u);
  ASSERT_FALSE(city.header("ETag").empty());
  auto again = Get("/api/v1/city", kViewer, {{"If-None-Match", city.header("ETag")}});
  EXPECT_EQ(again.status, 304);
  EXPECT_TRUE(again.body.empty());

  auto snap = Get("/api/v1/snapshots/cam-1:100", kViewer);
  ASSERT_EQ(snap.status, 200);
  EXPECT_EQ(snap.header("Content-Type"), "image/jpeg");
  EXPECT_EQ(snap.body, std::string("\xff\xd8\xff\xe0jpeg", 8));
  EXPECT_NE(snap.header("Cache-Control").find("private"), std::string::npos);
  EXPECT_EQ(Get("/api/v1/snapshots/cam-1:999", kViewer).status, 404);
  EXPECT_EQ(Get("/api/v1/snapshots/cam-1:100").status, 401);
}

// ---- operational endpoints and metrics ---------------------------------------------------------------

TEST_F(ApiTest, ProbesAndMetrics) {
  Start();
  EXPECT_EQ(Get("/livez").status, 200);
  EXPECT_EQ(Get("/readyz").status, 200);
  backend_.SetReady(false);
  auto r = Get("/readyz");
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(r.json()["status"], "starting");

  Get("/api/v1/cases", kViewer);
  Get("/api/v1/cases/CL-20261128-000001", kViewer);
  Get("/api/v1/cases/CL-nope", kViewer);
  Get("/nowhere/at/all");
  EXPECT_EQ(Counter("cityloop_http_requests_total", {{"route", "GET /api/v1/cases"}, {"code", "200"}}), 1);
  EXPECT_EQ(Counter("cityloop_http_requests_total", {{"route", "GET /api/v1/cases/{id}"}}), 2);
  EXPECT_EQ(Counter("cityloop_http_requests_total", {{"route", "GET /api/v1/cases/{id}"}, {"code", "404"}}), 1);
  EXPECT_EQ(Counter("cityloop_http_requests_total", {{"route", "unmatched"}, {"code", "404"}}), 1);
  auto metrics = Get("/metrics");
  ASSERT_EQ(metrics.status, 200);
  EXPECT_NE(metrics.body.find("cityloop_http_request_ms_bucket"), std::string::npos);
  EXPECT_NE(metrics.body.find("cityloop_stream_clients"), std::string::npos);
  EXPECT_NE(metrics.body.find("cityloop_stream_dropped_clients_total"), std::string::npos);
  EXPECT_NE(metrics.body.find("route=\"GET /api/v1/cases/{id}\""), std::string::npos);
}

// ---- protocol-level errors ----------------------------------------------------------------------------

TEST_F(ApiTest, WrongMethodIs405WithAllow) {
  Start();
  Conn c(port());
  auto r = c.Request("DELETE", "/api/v1/cases/CL-20261128-000001", Auth(kAdmin));
  EXPECT_EQ(r.status, 405);
  EXPECT_EQ(r.header("Allow"), "GET, HEAD");
  auto post = c.Request("GET", "/api/v1/cases/CL-20261128-000001/actions", Auth(kAdmin));
  EXPECT_EQ(post.status, 405);
  EXPECT_EQ(post.header("Allow"), "POST");
}

TEST_F(ApiTest, OversizedBodyIs413) {
  options_.max_body_bytes = 4096;
  Start();
  auto r = Post("/api/v1/cases/CL-20261128-000001/actions",
                R"({"action":"acknowledge","note":")" + std::string(5000, 'x') + "\"}", kAdmin);
  EXPECT_EQ(r.status, 413);
  EXPECT_EQ(r.error_code(), "payload_too_large");
  EXPECT_TRUE(backend_.submitted().empty());
}

TEST_F(ApiTest, OversizedHeaderIs431) {
  options_.max_header_bytes = 2048;
  Start();
  auto r = Get("/api/v1/whoami", kAdmin, {{"X-Junk", std::string(4000, 'j')}});
  EXPECT_EQ(r.status, 431);
  EXPECT_EQ(r.error_code(), "headers_too_large");
  EXPECT_EQ(Get("/api/v1/whoami", kAdmin).status, 200);
}

TEST_F(ApiTest, GarbageRequestIs400AndClosed) {
  Start();
  Conn c(port());
  c.Send("GARBAGE\r\n\r\n");
  auto r = c.ReadResponse();
  EXPECT_EQ(r.status, 400);
  EXPECT_TRUE(c.ServerClosed());
}

TEST_F(ApiTest, IdleConnectionTimesOut) {
  options_.request_timeout_ms = 200;
  Start();
  Conn c(port());
  c.Send("GET /livez HTTP/1.1\r\nHost: x\r\n");  // never finished
  EXPECT_TRUE(c.ServerClosed(std::chrono::seconds(10)));
}

TEST_F(ApiTest, ConnectionsOverTheLimitGet503) {
  options_.max_connections = 2;
  Start();
  Conn a(port()), b(port());
  EXPECT_EQ(a.Request("GET", "/livez").status, 200);
  EXPECT_EQ(b.Request("GET", "/livez").status, 200);
  Conn third(port());
  auto r = third.ReadResponse();
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(r.error_code(), "too_many_connections");
  EXPECT_TRUE(third.ServerClosed());
}

// ---- CORS ------------------------------------------------------------------------------------------------

TEST_F(ApiTest, CorsHeadersOnlyForListedOrigins) {
  options_.cors_origins = {"https://console.example.org"};
  Start();
  auto ok = Get("/api/v1/whoami", kViewer, {{"Origin", "https://console.example.org"}});
  EXPECT_EQ(ok.status, 200);
  EXPECT_EQ(ok.header("Access-Control-Allow-Origin"), "https://console.example.org");
  EXPECT_EQ(ok.header("Vary"), "Origin");

  auto foreign = Get("/api/v1/whoami", kViewer, {{"Origin", "https://evil.example.com"}});
  EXPECT_EQ(foreign.status, 200);
  EXPECT_FALSE(foreign.has("Access-Control-Allow-Origin"));

  // State-changing requests from a foreign origin are refused before anything happens.
  auto post = Post("/api/v1/cases/CL-20261128-000001/actions", R"({"action":"acknowledge"})", kAdmin,
                   {{"Content-Type", "application/json"}, {"Origin", "https://evil.example.com"}});
  EXPECT_EQ(post.status, 403);
  EXPECT_EQ(post.error_code(), "forbidden_origin");
  EXPECT_TRUE(backend_.submitted().empty());
  // From a listed origin, and from the console's own origin, they go through.
  EXPECT_EQ(Post("/api/v1/cases/CL-20261128-000001/actions", R"({"action":"acknowledge"})", kAdmin,
                 {{"Content-Type", "application/json"}, {"Origin", "https://console.example.org"}})
                .status,
            200);
  Conn c(port());
  auto same = c.Request("POST", "/api/v1/cases/CL-20261128-000001/actions",
                        Auth(kAdmin, {{"Content-Type", "application/json"}, {"Origin", "http://127.0.0.1"}}),
                        R"({"action":"acknowledge"})");
  EXPECT_EQ(same.status, 200) << same.body;  // Host: 127.0.0.1 (Conn sends it)
}

TEST_F(ApiTest, PreflightIsAnswered) {
  options_.cors_origins = {"https://console.example.org"};
  Start();
  Conn c(port());
  auto r = c.Request("OPTIONS", "/api/v1/cases/CL-20261128-000001/actions",
                     {{"Origin", "https://console.example.org"},
                      {"Access-Control-Request-Method", "POST"},
                      {"Access-Control-Request-Headers", "authorization, content-type"}});
  EXPECT_EQ(r.status, 204);
  EXPECT_EQ(r.header("Allow"), "OPTIONS, POST");
  EXPECT_EQ(r.header("Access-Control-Allow-Origin"), "https://console.example.org");
  EXPECT_EQ(r.header("Access-Control-Allow-Methods"), "OPTIONS, POST");
  EXPECT_NE(r.header("Access-Control-Allow-Headers").find("Authorization"), std::string::npos);
  EXPECT_FALSE(r.header("Access-Control-Max-Age").empty());

  auto foreign = c.Request("OPTIONS", "/api/v1/cases", {{"Origin", "https://evil.example.com"},
                                                         {"Access-Control-Request-Method", "GET"}});
  EXPECT_EQ(foreign.status, 204);
  EXPECT_FALSE(foreign.has("Access-Control-Allow-Origin"));
  EXPECT_EQ(c.Request("OPTIONS", "/no/such/path").status, 404);
}

// ---- the web console ----------------------------------------------------------------------------------------

TEST_F(ApiTest, ServesTheWebConsole) {
  Start();
  auto index = Get("/");
  ASSERT_EQ(index.status, 200);
  EXPECT_EQ(index.header("Content-Type"), "text/html; charset=utf-8");
  EXPECT_NE(index.body.find("cityloop"), std::string::npos);
  EXPECT_EQ(index.header("Cache-Control"), "no-cache");

  auto js = Get("/app.js");
  ASSERT_EQ(js.status, 200);
  EXPECT_EQ(js.header("Content-Type"), "text/javascript; charset=utf-8");
  EXPECT_EQ(js.body, "export const x = 1;\n");
  auto css = Get("/style.css");
  EXPECT_EQ(css.header("Content-Type"), "text/css; charset=utf-8");

  const std::string etag = js.header("ETag");
  ASSERT_FALSE(etag.empty());
  auto cached = Get("/app.js", "", {{"If-None-Match", etag}});
  EXPECT_EQ(cached.status, 304);
  EXPECT_TRUE(cached.body.empty());

  EXPECT_EQ(Get("/missing.js").status, 404);
  // Operational routes win over the file pattern.
  EXPECT_EQ(Get("/livez").json()["status"], "ok");
}

TEST_F(ApiTest, NoDirectoryTraversal) {
  ::cityloop::testing::WriteFile(web_.file("secret.txt"), "CONTENT-A");  // next to the web root
  std::filesystem::create_directories(web_file("sub"));
  ::cityloop::testing::WriteFile(web_file("sub/inner.js"), "CONTENT-B");
  ::cityloop::testing::WriteFile(web_file(".hidden"), "CONTENT-C");
  std::filesystem::create_symlink(web_.file("secret.txt"), web_file("link.txt"));
  Start();
  for (const char* target : {"/..%2Fsecret.txt", "/%2E%2E%2Fsecret.txt", "/../secret.txt", "/sub%2Finner.js",
                             "/.hidden", "/link.txt", "/sub", "/%2Fetc%2Fpasswd", "/..", "/sub/inner.js"}) {
    auto r = Get(target);
    EXPECT_NE(r.status, 200) << target;
    EXPECT_EQ(r.body.find("CONTENT-"), std::string::npos) << target << ": " << r.body;
  }
}

TEST(ApiStartTest, BadListenAddressIsAnError) {
  FakeBackend backend;
  MetricsRegistry metrics;
  ApiOptions options;
  auto s = ApiServer::Start(backend, options, metrics, "nowhere");
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace cityloop::console::testing
