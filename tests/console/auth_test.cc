// Tokens, digests and roles (console/auth.h), and the authorization matrix:
// every endpoint for every kind of caller, against a table of expected
// statuses.
#include "console/auth.h"

#include <gtest/gtest.h>

#include <array>
#include <map>
#include <string>
#include <vector>

#include "tests/console/api_fixture.h"

namespace cityloop::console::testing {
namespace {

using nlohmann::json;

TEST(Sha256Test, KnownVectors) {
  EXPECT_EQ(Sha256Hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(Sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(ConstantTimeEqualTest, ComparesEveryByte) {
  Sha256Digest a = Sha256("x"), b = a;
  EXPECT_TRUE(ConstantTimeEqual(a, b));
  b[31] ^= 1;
  EXPECT_FALSE(ConstantTimeEqual(a, b));
  b = a;
  b[0] ^= 0x80;
  EXPECT_FALSE(ConstantTimeEqual(a, b));
}

TEST(TokenTableTest, AuthenticatesByDigest) {
  auto built = TokenTable::Build({MakeToken("op", "secret-1", Role::kOperator, {"furong"}),
                                  MakeToken("boss", "secret-2", Role::kAdmin)});
  ASSERT_TRUE(built.ok()) << built.status().ToString();
  const TokenTable& t = *built;
  EXPECT_EQ(t.size(), 2u);
  auto op = t.Authenticate("Bearer secret-1");
  ASSERT_TRUE(std::holds_alternative<Principal>(op));
  EXPECT_EQ(std::get<Principal>(op).name, "op");
  EXPECT_EQ(std::get<Principal>(op).role, Role::kOperator);
  EXPECT_EQ(std::get<Principal>(op).districts, std::vector<std::string>{"furong"});
  EXPECT_EQ(std::get<Principal>(t.Authenticate("BEARER  secret-2 ")).name, "boss");

  EXPECT_EQ(std::get<AuthFailure>(t.Authenticate("")), AuthFailure::kMissing);
  EXPECT_EQ(std::get<AuthFailure>(t.Authenticate("Bearer secret-3")), AuthFailure::kUnknown);
  EXPECT_EQ(std::get<AuthFailure>(t.Authenticate("Bearer SECRET-1")), AuthFailure::kUnknown);
  for (const char* bad : {"secret-1", "Basic secret-1", "Bearer", "Bearer ", "Bearer a b", "Bearer \"x\""}) {
    EXPECT_EQ(std::get<AuthFailure>(t.Authenticate(bad)), AuthFailure::kMalformed) << bad;
  }
  EXPECT_EQ(std::get<AuthFailure>(t.Authenticate("Bearer " + std::string(600, 'a'))), AuthFailure::kMalformed);
}

TEST(TokenTableTest, UpperCaseHexIsAccepted) {
  ApiOptions::Token tok = MakeToken("op", "secret-1", Role::kOperator);
  for (char& c : tok.sha256) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  auto built = TokenTable::Build({tok});
  ASSERT_TRUE(built.ok());
  EXPECT_TRUE(std::holds_alternative<Principal>(built->Authenticate("Bearer secret-1")));
}

TEST(TokenTableTest, RejectsBadDigestsAndTheSystemRole) {
  ApiOptions::Token tok = MakeToken("op", "x", Role::kOperator);
  tok.sha256 = "abc";
  EXPECT_FALSE(TokenTable::Build({tok}).ok());
  tok.sha256 = std::string(64, 'g');
  EXPECT_FALSE(TokenTable::Build({tok}).ok());
  tok = MakeToken("engine", "x", Role::kSystem);
  EXPECT_FALSE(TokenTable::Build({tok}).ok());
}

TEST(PrincipalTest, DistrictScope) {
  Principal all{"a", Role::kViewer, {}};
  EXPECT_TRUE(all.Sees("furong"));
  EXPECT_TRUE(all.Sees(""));
  Principal one{"b", Role::kOperator, {"furong"}};
  EXPECT_TRUE(one.Sees("furong"));
  EXPECT_FALSE(one.Sees("yuelu"));
  EXPECT_FALSE(one.Sees(""));
}

TEST(MinRoleForTest, SupervisorActions) {
  const json plain{{"status", "handled"}, {"reworks", 0}};
  const json reworked{{"status", "handled"}, {"reworks", 2}};
  for (CaseAction a : {CaseAction::kAcknowledge, CaseAction::kEnroute, CaseAction::kArrive, CaseAction::kHandled,
                       CaseAction::kVerifyPass, CaseAction::kVerifyFail, CaseAction::kReturn, CaseAction::kReassign,
                       CaseAction::kAssist, CaseAction::kExtend}) {
    EXPECT_EQ(MinRoleFor(a, plain), Role::kOperator) << CaseActionName(a);
  }
  for (CaseAction a : {CaseAction::kSuspend, CaseAction::kDefer, CaseAction::kResume, CaseAction::kInvalidate,
                       CaseAction::kReopen, CaseAction::kMerge}) {
    EXPECT_EQ(MinRoleFor(a, plain), Role::kSupervisor) << CaseActionName(a);
  }
  EXPECT_EQ(MinRoleFor(CaseAction::kClose, plain), Role::kOperator);
  EXPECT_EQ(MinRoleFor(CaseAction::kClose, reworked), Role::kSupervisor);
}

// ---- the matrix ------------------------------------------------------------------------------

// Callers: no token, a bad token, and one token per role; op-furong and
// supervisor are limited to furong; CL-F is a furong case, CL-Y a yuelu one.
enum Caller { kNone, kBad, kV, kOpF, kOp, kSup, kAdm, kCallers };
const char* CallerName(int c) {
  static const char* kNames[] = {"no token", "bad token", "viewer", "op-furong", "operator", "supervisor(furong)", "admin"};
  return kNames[c];
}
std::string CallerToken(int c) {
  switch (c) {
    case kNone: return "";
    case kBad: return kBadToken;
    case kV: return kViewer;
    case kOpF: return kOpFurong;
    case kOp: return kOperator;
    case kSup: return kSupervisor;
    default: return kAdmin;
  }
}

struct Row {
  const char* name;
  std::string method, target, body;
  std::array<int, kCallers> expect;  // by Caller
};

class AuthMatrixTest : public ApiFixture {};

TEST_F(AuthMatrixTest, EveryEndpointEveryCaller) {
  backend_.AddCase("CL-F", "furong", "dispatched");
  backend_.AddCase("CL-F2", "furong", "dispatched");
  backend_.AddCase("CL-Y", "yuelu", "dispatched");
  backend_.AddCase("CL-Y2", "yuelu", "dispatched");
  backend_.AddCase("CL-FR", "furong", "handled", {{"reworks", 1}});
  backend_.AddSnapshot("snap-1", "jpeg");
  Start();
  const std::string ack = R"({"action":"acknowledge"})";
  //                                                                          none  bad  view opF  op   sup  adm
  const std::vector<Row> rows = {
      {"whoami", "GET", "/api/v1/whoami", "", {401, 401, 200, 200, 200, 200, 200}},
      {"list", "GET", "/api/v1/cases", "", {401, 401, 200, 200, 200, 200, 200}},
      {"list foreign district", "GET", "/api/v1/cases?district=yuelu", "", {401, 401, 200, 403, 200, 403, 200}},
      {"case own", "GET", "/api/v1/cases/CL-F", "", {401, 401, 200, 200, 200, 200, 200}},
      {"case foreign", "GET", "/api/v1/cases/CL-Y", "", {401, 401, 200, 404, 200, 404, 200}},
      {"case missing", "GET", "/api/v1/cases/CL-none", "", {401, 401, 404, 404, 404, 404, 404}},
      {"ack own", "POST", "/api/v1/cases/CL-F/actions", ack, {401, 401, 403, 200, 200, 200, 200}},
      {"ack foreign", "POST", "/api/v1/cases/CL-Y/actions", ack, {401, 401, 403, 404, 200, 404, 200}},
      {"suspend own", "POST", "/api/v1/cases/CL-F2/actions", R"({"action":"suspend"})",
       {401, 401, 403, 403, 403, 200, 200}},
      {"suspend foreign", "POST", "/api/v1/cases/CL-Y2/actions", R"({"action":"suspend"})",
       {401, 401, 403, 404, 403, 404, 200}},
      {"close reworked", "POST", "/api/v1/cases/CL-FR/actions", R"({"action":"close"})",
       {401, 401, 403, 403, 403, 200, 200}},
      {"kpi by district", "GET", "/api/v1/kpi?group_by=district", "", {401, 401, 200, 200, 200, 200, 200}},
      {"kpi by category", "GET", "/api/v1/kpi?group_by=category", "", {401, 401, 200, 403, 200, 403, 200}},
      {"units", "GET", "/api/v1/units", "", {401, 401, 200, 200, 200, 200, 200}},
      {"city", "GET", "/api/v1/city", "", {401, 401, 200, 200, 200, 200, 200}},
      {"snapshot", "GET", "/api/v1/snapshots/snap-1", "", {401, 401, 200, 200, 200, 200, 200}},
      {"stream", "GET", "/api/v1/stream", "", {401, 401, 200, 200, 200, 200, 200}},
      {"stream foreign district", "GET", "/api/v1/stream?district=yuelu", "", {401, 401, 200, 403, 200, 403, 200}},
      {"metrics", "GET", "/metrics", "", {200, 200, 200, 200, 200, 200, 200}},
      {"livez", "GET", "/livez", "", {200, 200, 200, 200, 200, 200, 200}},
      {"readyz", "GET", "/readyz", "", {200, 200, 200, 200, 200, 200, 200}},
      {"web console", "GET", "/", "", {200, 200, 200, 200, 200, 200, 200}},
  };
  int mismatches = 0;
  std::string report;
  for (const Row& row : rows) {
    for (int caller = 0; caller < kCallers; ++caller) {
      Headers headers = Auth(CallerToken(caller));
      if (row.method == "POST") headers.emplace_back("Content-Type", "application/json");
      int status = 0;
      if (row.target == "/api/v1/stream" || row.target.rfind("/api/v1/stream?", 0) == 0) {
        SseClient s(port(), row.target, headers);
        status = s.status();
      } else {
        Conn c(port());
        status = c.Request(row.method, row.target, headers, row.body).status;
      }
      if (status != row.expect[caller]) {
        ++mismatches;
        report += std::string("  ") + row.name + " as " + CallerName(caller) + ": got " + std::to_string(status) +
                  ", want " + std::to_string(row.expect[caller]) + "\n";
      }
    }
  }
  EXPECT_EQ(mismatches, 0) << report;

  // Every command that went through names its caller as actor and role.
  std::map<std::string, std::string> role_of = {{"op-furong", "operator"}, {"operator", "operator"},
                                                {"supervisor", "supervisor"}, {"admin", "admin"}};
  const auto sent = backend_.submitted();
  EXPECT_EQ(sent.size(), 11u);  // the 200s of the action rows
  for (const json& cmd : sent) {
    ASSERT_TRUE(role_of.count(cmd["actor"])) << cmd;
    EXPECT_EQ(cmd["role"], role_of[cmd["actor"]]) << cmd;
  }
}

}  // namespace
}  // namespace cityloop::console::testing
