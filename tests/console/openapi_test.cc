// docs/openapi.yaml against the server: every documented path and method is
// routed and every route documented; for a set of requests, the status is
// one the document lists for that operation, the content type one it
// describes, and the JSON body fits the documented schema (types, required
// and allowed fields, enums, nested objects and items).
#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <functional>
#include <set>
#include <string>
#include <vector>

#include "tests/console/api_fixture.h"

namespace cityloop::console::testing {
namespace {

using nlohmann::json;

class OpenApiTest : public ApiFixture {
 protected:
  OpenApiTest() : doc_(YAML::LoadFile(::cityloop::testing::ProjectRoot() + "/docs/openapi.yaml")) {}

  // Follows "$ref": "#/a/b/c" within the document.
  YAML::Node Walk(const YAML::Node& n, const std::vector<std::string>& parts, size_t i) const {
    if (i == parts.size() || !n.IsDefined()) return n;
    const YAML::Node& cn = n;
    return Walk(cn[parts[i]], parts, i + 1);
  }
  YAML::Node Resolve(const YAML::Node& n, int depth = 0) const {
    if (!n.IsMap() || !n["$ref"] || depth > 10) return n;
    std::string ref = n["$ref"].as<std::string>();
    EXPECT_EQ(ref.rfind("#/", 0), 0u) << ref;
    std::vector<std::string> parts;
    size_t start = 2;
    while (start <= ref.size()) {
      const size_t slash = ref.find('/', start);
      parts.push_back(ref.substr(start, slash == std::string::npos ? std::string::npos : slash - start));
      if (slash == std::string::npos) break;
      start = slash + 1;
    }
    YAML::Node target = Walk(doc_, parts, 0);
    EXPECT_TRUE(target.IsDefined()) << "dangling $ref " << ref;
    return Resolve(target, depth + 1);
  }

  static bool TypeMatches(const std::string& type, const json& v) {
    if (type == "object") return v.is_object();
    if (type == "array") return v.is_array();
    if (type == "string") return v.is_string();
    if (type == "integer") return v.is_number_integer();
    if (type == "number") return v.is_number();
    if (type == "boolean") return v.is_boolean();
    return false;
  }

  void Check(const YAML::Node& schema_in, const json& v, const std::string& where, std::vector<std::string>* errors,
             int depth = 0) const {
    if (depth > 12) return;
    const YAML::Node s = Resolve(schema_in);
    if (!s.IsMap()) return;
    if (s["nullable"] && s["nullable"].as<bool>() && v.is_null()) return;
    if (s["oneOf"]) {
      for (const auto& alt : s["oneOf"]) {
        std::vector<std::string> errs;
        Check(alt, v, where, &errs, depth + 1);
        if (errs.empty()) return;
      }
      errors->push_back(where + ": matches none of oneOf");
      return;
    }
    if (s["allOf"]) {
      for (const auto& part : s["allOf"]) Check(part, v, where, errors, depth + 1);
    }
    if (s["type"]) {
      const std::string type = s["type"].as<std::string>();
      if (!TypeMatches(type, v)) {
        errors->push_back(where + ": expected " + type + ", got " + v.dump().substr(0, 80));
        return;
      }
    }
    if (s["enum"] && v.is_string()) {
      bool found = false;
      for (const auto& e : s["enum"]) found = found || e.as<std::string>() == v.get<std::string>();
      if (!found) errors->push_back(where + ": '" + v.get<std::string>() + "' is not in the enum");
    }
    if (v.is_object()) {
      if (s["required"]) {
        for (const auto& r : s["required"]) {
          if (!v.contains(r.as<std::string>())) errors->push_back(where + ": missing required " + r.as<std::string>());
        }
      }
      const YAML::Node props = s["properties"];
      const bool closed = s["additionalProperties"] && s["additionalProperties"].IsScalar() &&
                          !s["additionalProperties"].as<bool>();
      for (const auto& [k, val] : v.items()) {
        if (props && props[k]) {
          Check(props[k], val, where + "." + k, errors, depth + 1);
        } else if (closed) {
          errors->push_back(where + ": field '" + k + "' is not documented");
        }
      }
    }
    if (v.is_array() && s["items"]) {
      for (size_t i = 0; i < v.size() && i < 10; ++i) {
        Check(s["items"], v[i], where + "[" + std::to_string(i) + "]", errors, depth + 1);
      }
    }
  }

  // Checks one exchange against the document: status listed, content type
  // described, JSON body valid. path is the template ("/api/v1/cases/{id}").
  void Expect(const std::string& method, const std::string& path, const Response& r, int want) {
    SCOPED_TRACE(method + " " + path + " -> " + std::to_string(r.status) + " " + r.body.substr(0, 300));
    EXPECT_EQ(r.status, want);
    ++checked_;
    const YAML::Node& doc = doc_;
    const YAML::Node op = doc["paths"][path][LowerStr(method)];
    ASSERT_TRUE(op.IsDefined()) << "undocumented operation";
    const YAML::Node resp = Resolve(op["responses"][std::to_string(r.status)]);
    ASSERT_TRUE(resp.IsDefined()) << "status " << r.status << " is not documented";
    statuses_.insert(method + " " + path + " " + std::to_string(r.status));
    if (!resp["content"]) {
      EXPECT_TRUE(r.body.empty());
      return;
    }
    std::string media = LowerStr(r.header("Content-Type"));
    media = media.substr(0, media.find(';'));
    YAML::Node content;
    for (const auto& kv : resp["content"]) {
      const std::string m = kv.first.as<std::string>();
      if (m == media || m == "*/*") {
        content = kv.second;
        break;
      }
    }
    ASSERT_TRUE(content.IsDefined()) << "content type " << media << " is not documented";
    if (media != "application/json") return;
    const json body = r.json();
    ASSERT_FALSE(body.is_discarded()) << "not JSON";
    std::vector<std::string> errors;
    Check(content["schema"], body, "body", &errors);
    std::string all;
    for (const auto& e : errors) all += "  " + e + "\n";
    EXPECT_TRUE(errors.empty()) << all;
  }

  Response Do(const std::string& method, const std::string& target, const std::string& token, Headers headers = {},
              const std::string& body = "") {
    Conn c(port());
    return c.Request(method, target, Auth(token, std::move(headers)), body);
  }

  YAML::Node doc_;
  int checked_ = 0;
  std::set<std::string> statuses_;
};

TEST_F(OpenApiTest, EveryRouteIsDocumentedAndEveryDocumentedPathRouted) {
  Start();
  std::set<std::string> documented, routed;
  const YAML::Node& doc = doc_;
  ASSERT_TRUE(doc["paths"].IsMap());
  for (const auto& path : doc["paths"]) {
    for (const auto& op : path.second) {
      std::string method = op.first.as<std::string>();
      for (char& c : method) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
      documented.insert(method + " " + path.first.as<std::string>());
    }
  }
  for (const std::string& r : server_->routes()) routed.insert(r);
  EXPECT_EQ(documented, routed);
  EXPECT_GE(routed.size(), 14u);
}

TEST_F(OpenApiTest, EveryRefResolves) {
  std::function<void(const YAML::Node&)> walk = [&](const YAML::Node& n) {
    if (n.IsMap()) {
      if (n["$ref"]) Resolve(n);
      for (const auto& kv : n) walk(kv.second);
    } else if (n.IsSequence()) {
      for (const auto& item : n) walk(item);
    }
  };
  walk(doc_);
}

TEST_F(OpenApiTest, ResponsesFitTheDocument) {
  options_.action_wait_ms = 300;
  backend_.AddCase("CL-1", "furong", "dispatched",
                   {{"recommended_unit", "u-1"}, {"signals", {{{"id", "s"}, {"attributes", {{"snapshot", "snap-1"}}}}}}});
  backend_.AddCase("CL-2", "furong", "dispatched");
  backend_.AddCase("CL-Y", "yuelu", "dispatched");
  backend_.SetTimeline("CL-1", {json{{"seq", 1}, {"action", "city.case.opened"}, {"at", "2026-11-28T00:00:00Z"}},
                                json{{"seq", 2},
                                     {"action", "city.dispatch.order"},
                                     {"detail", {{"candidates", {{{"unit_id", "u-1"}, {"eta_s", 60}},
                                                                 {{"unit_id", "u-2"}, {"eta_s", 90}}}}}}}});
  backend_.AddSnapshot("snap-1", "\xff\xd8jpeg");
  backend_.SetUnits(json::array({{{"id", "u-1"}, {"department", "drainage"}, {"status", "available"}}}));
  Start();
  const std::string cases = "/api/v1/cases", one = "/api/v1/cases/{id}", act = "/api/v1/cases/{id}/actions";
  const Headers json_type = {{"Content-Type", "application/json"}};

  Expect("GET", cases, Do("GET", "/api/v1/cases", kAdmin), 200);
  Expect("GET", cases, Do("GET", "/api/v1/cases?limit=1&status=open", kAdmin), 200);
  Expect("GET", cases, Do("GET", "/api/v1/cases?limit=zero", kAdmin), 400);
  Expect("GET", cases, Do("GET", "/api/v1/cases", ""), 401);
  Expect("GET", cases, Do("GET", "/api/v1/cases?district=yuelu", kOpFurong), 403);

  Expect("GET", one, Do("GET", "/api/v1/cases/CL-1", kViewer), 200);
  Expect("GET", one, Do("GET", "/api/v1/cases/CL-none", kViewer), 404);
  Expect("GET", one, Do("GET", "/api/v1/cases/a%20b", kViewer), 400);
  Expect("GET", one, Do("GET", "/api/v1/cases/CL-1", kBadToken), 401);

  Expect("POST", act, Do("POST", "/api/v1/cases/CL-1/actions", kOperator, json_type, R"({"action":"acknowledge"})"), 200);
  Expect("POST", act, Do("POST", "/api/v1/cases/CL-1/actions", kOperator, json_type, R"({"action":"dance"})"), 400);
  Expect("POST", act, Do("POST", "/api/v1/cases/CL-1/actions", kViewer, json_type, R"({"action":"acknowledge"})"), 403);
  Expect("POST", act, Do("POST", "/api/v1/cases/CL-no/actions", kOperator, json_type, R"({"action":"acknowledge"})"), 404);
  Expect("POST", act, Do("POST", "/api/v1/cases/CL-1/actions", kOperator, {}, R"({"action":"acknowledge"})"), 415);
  {
    Conn big(port());
    big.Send("POST /api/v1/cases/CL-1/actions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
             "Authorization: Bearer " + std::string(kOperator) + "\r\nContent-Length: 70000\r\n\r\n");
    Expect("POST", act, big.ReadResponse(), 413);
  }
  Expect("POST", act, Do("POST", "/api/v1/cases/CL-1/actions", "", json_type, R"({"action":"acknowledge"})"), 401);
  backend_.SetEngine(FakeBackend::Engine::kReject);
  Expect("POST", act, Do("POST", "/api/v1/cases/CL-1/actions", kOperator, json_type, R"({"action":"acknowledge"})"), 409);
  backend_.SetEngine(FakeBackend::Engine::kSilent);
  Expect("POST", act, Do("POST", "/api/v1/cases/CL-1/actions", kOperator, json_type, R"({"action":"acknowledge"})"), 202);
  backend_.SetEngine(FakeBackend::Engine::kFail);
  Expect("POST", act, Do("POST", "/api/v1/cases/CL-1/actions", kOperator, json_type, R"({"action":"acknowledge"})"), 503);
  backend_.SetEngine(FakeBackend::Engine::kApply);

  Expect("GET", "/api/v1/kpi", Do("GET", "/api/v1/kpi?group_by=district", kOpFurong), 200);
  Expect("GET", "/api/v1/kpi", Do("GET", "/api/v1/kpi?from=2026-02-30", kViewer), 400);
  Expect("GET", "/api/v1/kpi", Do("GET", "/api/v1/kpi?group_by=category", kOpFurong), 403);
  backend_.SetKpiError(true);
  Expect("GET", "/api/v1/kpi", Do("GET", "/api/v1/kpi", kViewer), 500);
  backend_.SetKpiError(false);

  Expect("GET", "/api/v1/units", Do("GET", "/api/v1/units", kViewer), 200);
  Expect("GET", "/api/v1/units", Do("GET", "/api/v1/units?x=1", kViewer), 400);
  const Response city = Do("GET", "/api/v1/city", kViewer);
  Expect("GET", "/api/v1/city", city, 200);
  Expect("GET", "/api/v1/city", Do("GET", "/api/v1/city", kViewer, {{"If-None-Match", city.header("ETag")}}), 304);
  Expect("GET", "/api/v1/whoami", Do("GET", "/api/v1/whoami", kOpFurong), 200);
  Expect("GET", "/api/v1/whoami", Do("GET", "/api/v1/whoami", ""), 401);
  Expect("GET", "/api/v1/snapshots/{id}", Do("GET", "/api/v1/snapshots/snap-1", kViewer), 200);
  Expect("GET", "/api/v1/snapshots/{id}", Do("GET", "/api/v1/snapshots/snap-2", kViewer), 404);

  {
    SseClient s(port(), "/api/v1/stream?type=city.case.", Auth(kViewer));
    Expect("GET", "/api/v1/stream", s.head(), 200);
  }
  Expect("GET", "/api/v1/stream", Do("GET", "/api/v1/stream?type=%20", kViewer), 400);
  Expect("GET", "/api/v1/stream", Do("GET", "/api/v1/stream?district=yuelu", kOpFurong), 403);
  Expect("GET", "/api/v1/stream", Do("GET", "/api/v1/stream", ""), 401);

  Expect("GET", "/metrics", Do("GET", "/metrics", ""), 200);
  Expect("GET", "/livez", Do("GET", "/livez", ""), 200);
  Expect("GET", "/readyz", Do("GET", "/readyz", ""), 200);
  backend_.SetReady(false);
  Expect("GET", "/readyz", Do("GET", "/readyz", ""), 503);
  Expect("GET", "/", Do("GET", "/", ""), 200);
  Expect("GET", "/{file}", Do("GET", "/app.js", ""), 200);
  Expect("GET", "/{file}", Do("GET", "/nothing.js", ""), 404);
  EXPECT_GE(checked_, 40);
}

TEST_F(OpenApiTest, StreamLimitStatusesAreDocumented) {
  options_.max_streams = 2;
  options_.max_streams_per_token = 1;
  Start();
  SseClient first(port(), "/api/v1/stream", Auth(kViewer));
  ASSERT_EQ(first.status(), 200);
  SseClient same(port(), "/api/v1/stream", Auth(kViewer));
  Expect("GET", "/api/v1/stream", same.head(), 429);
  SseClient second(port(), "/api/v1/stream", Auth(kAdmin));
  ASSERT_EQ(second.status(), 200);
  SseClient over(port(), "/api/v1/stream", Auth(kOperator));
  Expect("GET", "/api/v1/stream", over.head(), 503);
}

}  // namespace
}  // namespace cityloop::console::testing
