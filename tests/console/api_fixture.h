// The console API suites' fixture: an ApiServer on 127.0.0.1:0 over a
// FakeBackend, with one token per role (and a district-scoped operator and
// supervisor), a scratch web root, and request helpers.
#pragma once

#include <gtest/gtest.h>

#include <filesystem>
#include <memory>
#include <string>

#include "console/api.h"
#include "console/auth.h"
#include "core/metrics.h"
#include "tests/console/fake_backend.h"
#include "tests/console/test_http.h"
#include "tests/support/test_support.h"

namespace cityloop::console::testing {

// Tokens (the plain values; the config holds their SHA-256).
inline const char* const kViewer = "viewer-token-0001";
inline const char* const kOpFurong = "op-furong-token-0002";
inline const char* const kOperator = "operator-token-0003";
inline const char* const kSupervisor = "supervisor-token-0004";
inline const char* const kAdmin = "admin-token-0005";
inline const char* const kBadToken = "not-a-configured-token";

inline ApiOptions::Token MakeToken(const std::string& name, const std::string& token, Role role,
                                   std::vector<std::string> districts = {}) {
  ApiOptions::Token t;
  t.name = name;
  t.sha256 = Sha256Hex(token);
  t.role = role;
  t.districts = std::move(districts);
  return t;
}

class ApiFixture : public ::testing::Test {
 protected:
  ApiFixture() {
    options_.tokens = {MakeToken("viewer", kViewer, Role::kViewer),
                       MakeToken("op-furong", kOpFurong, Role::kOperator, {"furong"}),
                       MakeToken("operator", kOperator, Role::kOperator),
                       MakeToken("supervisor", kSupervisor, Role::kSupervisor, {"furong"}),
                       MakeToken("admin", kAdmin, Role::kAdmin)};
    std::filesystem::create_directories(web_root());
    options_.web_root = web_root();
    options_.threads = 2;
    options_.action_wait_ms = 2000;
    options_.access_log = false;
    ::cityloop::testing::WriteFile(web_file("index.html"), "<!doctype html><title>cityloop</title>");
    ::cityloop::testing::WriteFile(web_file("app.js"), "export const x = 1;\n");
    ::cityloop::testing::WriteFile(web_file("style.css"), "body { margin: 0 }\n");
  }
  ~ApiFixture() override {
    if (server_) server_->Stop();
  }

  void Start() {
    auto s = ApiServer::Start(backend_, options_, metrics_, "127.0.0.1:0");
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    server_ = std::move(s).value();
    ASSERT_NE(server_->port(), 0);
  }
  uint16_t port() const { return server_->port(); }
  // The web root is a directory inside the scratch dir, so "../x" stays in it too.
  std::string web_root() const { return web_.file("root"); }
  std::string web_file(const std::string& name) const { return web_root() + "/" + name; }

  static Headers Auth(const std::string& token, Headers extra = {}) {
    if (!token.empty()) extra.emplace_back("Authorization", "Bearer " + token);
    return extra;
  }
  Response Get(const std::string& target, const std::string& token = "", Headers extra = {}) {
    Conn c(port());
    return c.Request("GET", target, Auth(token, std::move(extra)));
  }
  Response Post(const std::string& target, const std::string& body, const std::string& token,
                Headers extra = {{"Content-Type", "application/json"}}) {
    Conn c(port());
    return c.Request("POST", target, Auth(token, std::move(extra)), body);
  }
  Response Act(const std::string& case_id, const nlohmann::json& body, const std::string& token) {
    return Post("/api/v1/cases/" + case_id + "/actions", body.dump(), token);
  }

  int64_t Counter(const std::string& name, const Labels& match = {}) const {
    return metrics_.CounterTotal(name, match);
  }

  FakeBackend backend_;
  MetricsRegistry metrics_;
  ::cityloop::testing::TempDir web_;
  ApiOptions options_;
  std::unique_ptr<ApiServer> server_;
};

}  // namespace cityloop::console::testing
