#include "console/http_server.h"

#include <atomic>
#include <stdexcept>
#include <string>

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wnull-dereference"  // inside Asio, once inlined
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#pragma GCC diagnostic pop
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "core/metrics.h"

namespace cityloop::console {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

// A blocking HTTP/1.1 client holding one keep-alive connection.
class Client {
 public:
  explicit Client(uint16_t port) : socket_(ioc_) {
    socket_.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
  }

  http::response<http::string_body> Request(http::verb method, const std::string& target,
                                            const std::string& body = "", bool keep_alive = true) {
    http::request<http::string_body> req{method, target, 11};
    req.set(http::field::host, "127.0.0.1");
    req.keep_alive(keep_alive);
    if (!body.empty() || method == http::verb::post) {
      req.body() = body;
      req.prepare_payload();
    }
    http::write(socket_, req);
    return Read(method == http::verb::head);
  }

  http::response<http::string_body> Get(const std::string& target) { return Request(http::verb::get, target); }

  void WriteRaw(const std::string& bytes) { asio::write(socket_, asio::buffer(bytes)); }

  http::response<http::string_body> Read(bool head = false) {
    http::response_parser<http::string_body> parser;
    parser.skip(head);
    http::read(socket_, buffer_, parser);
    return parser.release();
  }

  // True once the server has closed the connection.
  bool ServerClosed() {
    beast::error_code ec;
    char c;
    socket_.read_some(asio::buffer(&c, 1), ec);
    return ec == asio::error::eof || ec == asio::error::connection_reset;
  }

 private:
  asio::io_context ioc_;
  tcp::socket socket_;
  beast::flat_buffer buffer_;
};

nlohmann::json Json(const http::response<http::string_body>& r) { return nlohmann::json::parse(r.body()); }

class HttpServerTest : public ::testing::Test {
 protected:
  void StartServer(std::map<std::string, Handler> extra = {}, int threads = 1) {
    auto routes = OperationalRoutes(registry_, [this] { return ready_.load(); });
    for (auto& [k, h] : extra) routes[k] = std::move(h);
    auto server = HttpServer::Start("127.0.0.1:0", std::move(routes), threads);
    ASSERT_TRUE(server.ok()) << server.status().ToString();
    server_ = std::move(server).value();
    ASSERT_NE(server_->port(), 0);
  }

  MetricsRegistry registry_;
  std::atomic<bool> ready_{false};
  std::unique_ptr<HttpServer> server_;
};

TEST_F(HttpServerTest, Livez) {
  StartServer();
  Client c(server_->port());
  auto r = c.Get("/livez");
  EXPECT_EQ(r.result_int(), 200);
  EXPECT_EQ(r[http::field::content_type], "application/json");
  EXPECT_EQ(Json(r), nlohmann::json({{"status", "ok"}}));
}

TEST_F(HttpServerTest, ReadyzFollowsTheFlag) {
  StartServer();
  Client c(server_->port());
  auto r = c.Get("/readyz");
  EXPECT_EQ(r.result_int(), 503);
  EXPECT_EQ(Json(r)["status"], "starting");
  ready_ = true;
  r = c.Get("/readyz");
  EXPECT_EQ(r.result_int(), 200);
  EXPECT_EQ(Json(r)["status"], "ready");
}

TEST_F(HttpServerTest, MetricsShowsCounters) {
  StartServer();
  registry_.GetCounter("cityloop_test_requests_total", "Requests seen by the test", {{"kind", "probe"}}).Inc(3);
  Client c(server_->port());
  auto r = c.Get("/metrics");
  EXPECT_EQ(r.result_int(), 200);
  EXPECT_EQ(r[http::field::content_type], "text/plain; version=0.0.4");
  EXPECT_NE(r.body().find("cityloop_test_requests_total"), std::string::npos) << r.body();
  EXPECT_NE(r.body().find("probe"), std::string::npos) << r.body();
  EXPECT_EQ(r.body(), registry_.RenderPrometheus());
}

TEST_F(HttpServerTest, UnknownPathIs404AndWrongMethodIs405) {
  StartServer();
  Client c(server_->port());
  auto r = c.Get("/nope");
  EXPECT_EQ(r.result_int(), 404);
  EXPECT_EQ(Json(r)["error"]["code"], "not_found");
  EXPECT_TRUE(Json(r)["error"]["message"].is_string());

  r = c.Request(http::verb::post, "/livez", "{}");
  EXPECT_EQ(r.result_int(), 405);
  EXPECT_EQ(Json(r)["error"]["code"], "method_not_allowed");
  EXPECT_EQ(r[http::field::allow], "GET, HEAD");

  // The connection is still usable after errors.
  EXPECT_EQ(c.Get("/livez").result_int(), 200);
}

TEST_F(HttpServerTest, HeadAnswersLikeGetWithoutBody) {
  StartServer();
  Client c(server_->port());
  auto r = c.Request(http::verb::head, "/livez");
  EXPECT_EQ(r.result_int(), 200);
  EXPECT_EQ(r[http::field::content_length], std::to_string(std::string(R"({"status":"ok"})").size()));
  EXPECT_TRUE(r.body().empty());
  EXPECT_EQ(c.Get("/livez").result_int(), 200);
}

TEST_F(HttpServerTest, ThrowingHandlerGives500AndServerKeepsRunning) {
  StartServer({{"GET /boom", [](const HttpRequest&) -> HttpResponse { throw std::runtime_error("kaput"); }}});
  Client c(server_->port());
  auto r = c.Get("/boom");
  EXPECT_EQ(r.result_int(), 500);
  EXPECT_EQ(Json(r)["error"]["code"], "internal");
  EXPECT_EQ(c.Get("/livez").result_int(), 200);
  Client other(server_->port());
  EXPECT_EQ(other.Get("/livez").result_int(), 200);
}

TEST_F(HttpServerTest, RequestIsParsed) {
  HttpRequest seen;
  StartServer({{"POST /api/v1/cases/{id}/actions", [&seen](const HttpRequest& req) {
                  seen = req;
                  HttpResponse r;
                  r.status = 202;
                  r.content_type = "text/plain";
                  r.body = "accepted";
                  r.headers.emplace_back("X-Case", req.params.at("id"));
                  return r;
                }}});
  Client c(server_->port());
  auto r = c.Request(http::verb::post, "/api/v1/cases/CL%2D1/actions?note=on+it%21&empty=&flag&a=1&a=2",
                     R"({"action":"acknowledge"})");
  EXPECT_EQ(r.result_int(), 202);
  EXPECT_EQ(r.body(), "accepted");
  EXPECT_EQ(r[http::field::content_type], "text/plain");
  EXPECT_EQ(r["X-Case"], "CL-1");
  EXPECT_EQ(seen.method, "POST");
  EXPECT_EQ(seen.path, "/api/v1/cases/CL-1/actions");
  EXPECT_EQ(seen.target, "/api/v1/cases/CL%2D1/actions?note=on+it%21&empty=&flag&a=1&a=2");
  EXPECT_EQ(seen.query.at("note"), "on it!");
  EXPECT_EQ(seen.query.at("empty"), "");
  EXPECT_EQ(seen.query.at("flag"), "");
  EXPECT_EQ(seen.query.at("a"), "2");
  EXPECT_EQ(seen.params.at("id"), "CL-1");
  EXPECT_EQ(seen.headers.at("host"), "127.0.0.1");
  EXPECT_EQ(seen.body, R"({"action":"acknowledge"})");
}

TEST_F(HttpServerTest, LiteralSegmentBeatsParameter) {
  auto text = [](std::string body) {
    return [body](const HttpRequest&) {
      HttpResponse r;
      r.body = body;
      return r;
    };
  };
  StartServer({{"GET /cases/{id}", text("by-id")}, {"GET /cases/summary", text("summary")}});
  Client c(server_->port());
  EXPECT_EQ(c.Get("/cases/summary").body(), "summary");
  EXPECT_EQ(c.Get("/cases/CL-9").body(), "by-id");
  EXPECT_EQ(c.Get("/cases/").result_int(), 404);
  EXPECT_EQ(c.Get("/cases/CL-9/x").result_int(), 404);
}

TEST_F(HttpServerTest, BodyOver1MiBIs413) {
  StartServer({{"POST /echo", [](const HttpRequest& req) {
                  HttpResponse r;
                  r.body = std::to_string(req.body.size());
                  return r;
                }}});
  {
    Client c(server_->port());
    auto r = c.Request(http::verb::post, "/echo", std::string(HttpServer::kMaxBodyBytes, 'x'));
    EXPECT_EQ(r.result_int(), 200);
    EXPECT_EQ(r.body(), std::to_string(HttpServer::kMaxBodyBytes));
  }
  Client c(server_->port());
  c.WriteRaw("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: " + std::to_string(HttpServer::kMaxBodyBytes + 1) +
             "\r\n\r\n");
  auto r = c.Read();
  EXPECT_EQ(r.result_int(), 413);
  EXPECT_EQ(Json(r)["error"]["code"], "payload_too_large");
  Client next(server_->port());
  EXPECT_EQ(next.Get("/livez").result_int(), 200);
}

TEST_F(HttpServerTest, MalformedRequestIs400) {
  StartServer();
  Client c(server_->port());
  c.WriteRaw("THIS IS NOT HTTP\r\n\r\n");
  auto r = c.Read();
  EXPECT_EQ(r.result_int(), 400);
  EXPECT_TRUE(c.ServerClosed());
}

TEST_F(HttpServerTest, KeepAliveAndClose) {
  StartServer();
  Client c(server_->port());
  for (int i = 0; i < 5; ++i) {
    auto r = c.Get("/livez");
    EXPECT_EQ(r.result_int(), 200);
    EXPECT_TRUE(r.keep_alive());
  }
  auto last = c.Request(http::verb::get, "/livez", "", /*keep_alive=*/false);
  EXPECT_EQ(last.result_int(), 200);
  EXPECT_FALSE(last.keep_alive());
  EXPECT_TRUE(c.ServerClosed());
}

TEST_F(HttpServerTest, SeveralThreadsServeConcurrentClients) {
  StartServer({}, /*threads=*/4);
  std::vector<std::unique_ptr<Client>> clients;
  for (int i = 0; i < 8; ++i) clients.push_back(std::make_unique<Client>(server_->port()));
  for (int round = 0; round < 3; ++round) {
    for (auto& c : clients) EXPECT_EQ(c->Get("/livez").result_int(), 200);
  }
}

TEST_F(HttpServerTest, StopClosesConnectionsAndIsIdempotent) {
  StartServer();
  Client c(server_->port());
  EXPECT_EQ(c.Get("/livez").result_int(), 200);
  server_->Stop();
  EXPECT_TRUE(c.ServerClosed());
  server_->Stop();
  server_.reset();
}

TEST(HttpServerStartTest, BadListenAddressIsAnError) {
  for (const char* bad : {"", "127.0.0.1", "127.0.0.1:", "127.0.0.1:http", "127.0.0.1:70000", "::1:80",
                          "[::1", "256.1.1.1:80"}) {
    auto server = HttpServer::Start(bad, {});
    EXPECT_FALSE(server.ok()) << bad;
    EXPECT_EQ(server.status().code(), StatusCode::kInvalidArgument) << bad << ": " << server.status().ToString();
  }
}

TEST(HttpServerStartTest, BadRouteIsAnError) {
  Handler h = [](const HttpRequest&) { return HttpResponse{}; };
  for (const char* bad : {"/livez", "get /livez", "GET livez", "GET /a?b"}) {
    auto server = HttpServer::Start("127.0.0.1:0", {{bad, h}});
    EXPECT_EQ(server.status().code(), StatusCode::kInvalidArgument) << bad;
  }
  auto conflict = HttpServer::Start("127.0.0.1:0", {{"GET /a/{x}", h}, {"GET /a/{y}", h}});
  EXPECT_EQ(conflict.status().code(), StatusCode::kInvalidArgument);
}

TEST(HttpServerStartTest, PortInUseIsUnavailable) {
  auto first = HttpServer::Start("127.0.0.1:0", {});
  ASSERT_TRUE(first.ok());
  auto second = HttpServer::Start("127.0.0.1:" + std::to_string((*first)->port()), {});
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), StatusCode::kUnavailable) << second.status().ToString();
}

TEST(JsonErrorTest, Shape) {
  HttpResponse r = JsonError(409, "conflict", "case \"CL-1\" is closed");
  EXPECT_EQ(r.status, 409);
  EXPECT_EQ(r.content_type, "application/json");
  auto j = nlohmann::json::parse(r.body);
  EXPECT_EQ(j, nlohmann::json({{"error", {{"code", "conflict"}, {"message", "case \"CL-1\" is closed"}}}}));
}

}  // namespace
}  // namespace cityloop::console
