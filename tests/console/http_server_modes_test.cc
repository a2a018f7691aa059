// HttpServer's deferred and streamed responses, request filters, observer,
// OPTIONS, limits and target decoding (the plain mode is in http_server_test.cc).
#include <gtest/gtest.h>

#include <atomic>
#include <future>
#include <mutex>
#include <string>
#include <thread>

#include "console/http_server.h"
#include "tests/console/test_http.h"
#include "tests/support/test_support.h"

namespace cityloop::console::testing {
namespace {

using ::cityloop::testing::WaitFor;

HttpResponse Text(std::string body, int status = 200) {
  HttpResponse r;
  r.status = status;
  r.content_type = "text/plain";
  r.body = std::move(body);
  return r;
}

class ServerModesTest : public ::testing::Test {
 protected:
  void StartServer(std::map<std::string, Handler> routes, HttpServerOptions options = {}) {
    auto s = HttpServer::Start("127.0.0.1:0", std::move(routes), std::move(options));
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    server_ = std::move(s).value();
  }
  uint16_t port() const { return server_->port(); }
  std::unique_ptr<HttpServer> server_;
};

// ---- deferred ---------------------------------------------------------------------

TEST_F(ServerModesTest, DeferredResponseSentFromAnotherThread) {
  std::promise<std::shared_ptr<Responder>> got;
  StartServer({{"GET /later", [&](const HttpRequest&) {
                  HttpResponse r;
                  r.deferred = std::make_shared<DeferredResponse>();
                  r.deferred->timeout = std::chrono::seconds(30);
                  r.deferred->start = [&](std::shared_ptr<Responder> responder) { got.set_value(responder); };
                  return r;
                }},
               {"GET /now", [](const HttpRequest&) { return Text("now"); }}});
  Conn c(port());
  c.Send(Conn::Build("GET", "/later", {}, ""));
  auto responder = got.get_future().get();
  std::thread t([responder] {
    responder->Send(Text("done", 201));
    responder->Send(Text("ignored", 500));  // the first one wins
  });
  auto r = c.ReadResponse();
  t.join();
  EXPECT_EQ(r.status, 201);
  EXPECT_EQ(r.body, "done");
  // The connection goes on.
  EXPECT_EQ(c.Request("GET", "/now").body, "now");
  EXPECT_FALSE(responder->Post([] {}));  // answered already: nothing more runs
}

TEST_F(ServerModesTest, DeferredTimeoutAnswersAndLaterSendIsIgnored) {
  std::shared_ptr<Responder> kept;
  std::mutex mu;
  StartServer({{"GET /slow", [&](const HttpRequest&) {
                 HttpResponse r;
                 r.deferred = std::make_shared<DeferredResponse>();
                 r.deferred->timeout = std::chrono::milliseconds(50);
                 r.deferred->start = [&](std::shared_ptr<Responder> responder) {
                   std::lock_guard<std::mutex> lock(mu);
                   kept = responder;
                 };
                 r.deferred->on_timeout = [] { return Text("pending", 202); };
                 return r;
               }}});
  Conn c(port());
  auto r = c.Request("GET", "/slow");
  EXPECT_EQ(r.status, 202);
  EXPECT_EQ(r.body, "pending");
  {
    std::lock_guard<std::mutex> lock(mu);
    ASSERT_TRUE(kept);
    kept->Send(Text("late"));
  }
  auto again = c.Request("GET", "/slow");
  EXPECT_EQ(again.body, "pending");
}

TEST_F(ServerModesTest, PostedWorkRunsOnTheServerBeforeTheAnswer) {
  std::promise<std::shared_ptr<Responder>> got;
  StartServer({{"GET /work", [&](const HttpRequest&) {
                 HttpResponse r;
                 r.deferred = std::make_shared<DeferredResponse>();
                 r.deferred->start = [&](std::shared_ptr<Responder> responder) { got.set_value(responder); };
                 return r;
               }}});
  Conn c(port());
  c.Send(Conn::Build("GET", "/work", {}, ""));
  auto responder = got.get_future().get();
  // From this (non-server) thread: the work runs on the connection's strand, and answers.
  EXPECT_TRUE(responder->Post([responder] { responder->Send(Text("posted")); }));
  EXPECT_EQ(c.ReadResponse().body, "posted");
}

// ---- streams ----------------------------------------------------------------------

struct StreamProbe {
  std::mutex mu;
  std::shared_ptr<StreamSink> sink;
  std::atomic<int> closes{0};
  std::atomic<int> why{-1};
  std::shared_ptr<StreamSink> Sink() {
    std::lock_guard<std::mutex> lock(mu);
    return sink;
  }
};

Handler StreamRoute(StreamProbe& probe, size_t max_queued = 64, std::chrono::milliseconds heartbeat = {},
                    int send_buffer = 0) {
  return [&probe, max_queued, heartbeat, send_buffer](const HttpRequest&) {
    HttpResponse r;
    r.content_type = "text/event-stream";
    r.headers.emplace_back("X-Stream", "1");
    r.stream = std::make_shared<StreamResponse>();
    r.stream->max_queued = max_queued;
    r.stream->heartbeat = heartbeat;
    r.stream->send_buffer_bytes = send_buffer;
    r.stream->start = [&probe](std::shared_ptr<StreamSink> sink) {
      sink->Write("data: hello\n\n");
      std::lock_guard<std::mutex> lock(probe.mu);
      probe.sink = std::move(sink);
    };
    r.stream->on_close = [&probe](StreamEnd why) {
      probe.why = static_cast<int>(why);
      probe.closes.fetch_add(1);
    };
    return r;
  };
}

TEST_F(ServerModesTest, StreamWritesFromAnyThreadAndEnds) {
  StreamProbe probe;
  StartServer({{"GET /events", StreamRoute(probe)}});
  SseClient c(port(), "/events", {});
  ASSERT_EQ(c.status(), 200);
  EXPECT_EQ(c.head().header("Content-Type"), "text/event-stream");
  EXPECT_EQ(c.head().header("X-Stream"), "1");
  EXPECT_FALSE(c.head().has("Content-Length"));
  auto first = c.Next();
  ASSERT_TRUE(first);
  EXPECT_EQ(first->data, "hello");
  ASSERT_TRUE(WaitFor([&] { return probe.Sink() != nullptr; }));
  std::thread writer([&] {
    for (int i = 0; i < 50; ++i) probe.Sink()->Write("id: " + std::to_string(i) + "\ndata: x\n\n");
    probe.Sink()->End();
  });
  for (int i = 0; i < 50; ++i) {
    auto e = c.Next();
    ASSERT_TRUE(e) << i;
    EXPECT_EQ(e->id, std::to_string(i));
  }
  writer.join();
  EXPECT_TRUE(c.ServerClosed());
  ASSERT_TRUE(WaitFor([&] { return probe.closes.load() == 1; }));
  EXPECT_EQ(probe.why.load(), static_cast<int>(StreamEnd::kEnded));
  EXPECT_FALSE(probe.Sink()->Write("more"));
}

TEST_F(ServerModesTest, ClientLeavingEndsTheStream) {
  StreamProbe probe;
  StartServer({{"GET /events", StreamRoute(probe)}});
  {
    SseClient c(port(), "/events", {});
    ASSERT_TRUE(c.Next());
  }
  ASSERT_TRUE(WaitFor([&] { return probe.closes.load() == 1; }));
  EXPECT_EQ(probe.why.load(), static_cast<int>(StreamEnd::kClientClosed));
  EXPECT_TRUE(WaitFor([&] { return server_->connections() == 0; }));
}

TEST_F(ServerModesTest, OverflowDisconnectsWithoutBlockingTheWriter) {
  StreamProbe probe;
  StartServer({{"GET /events", StreamRoute(probe, /*max_queued=*/4, {}, /*send_buffer=*/4096)}});
  SseClient c(port(), "/events", {}, /*rcvbuf=*/4096);
  ASSERT_TRUE(WaitFor([&] { return probe.Sink() != nullptr; }));
  const std::string chunk(8192, 'x');
  int writes = 0;
  while (probe.Sink()->Write(chunk) && writes < 100000) ++writes;  // never blocks; fails once over the limit
  EXPECT_LT(writes, 100000);
  ASSERT_TRUE(WaitFor([&] { return probe.closes.load() == 1; }));
  EXPECT_EQ(probe.why.load(), static_cast<int>(StreamEnd::kOverflow));
  EXPECT_TRUE(c.ServerClosed());
}

TEST_F(ServerModesTest, HeartbeatWhenIdleAndStopEndsStreams) {
  StreamProbe probe;
  StartServer({{"GET /events", StreamRoute(probe, 64, std::chrono::milliseconds(30))}});
  SseClient c(port(), "/events", {});
  ASSERT_TRUE(c.Next());
  EXPECT_TRUE(WaitFor([&] {
    c.Next(std::chrono::milliseconds(50));
    return c.comments() >= 2;
  }));
  server_->Stop();
  EXPECT_EQ(probe.closes.load(), 1);
  EXPECT_EQ(probe.why.load(), static_cast<int>(StreamEnd::kServerStopped));
  EXPECT_TRUE(c.ServerClosed());
  EXPECT_FALSE(probe.Sink()->Write("after stop"));  // safe, and refused
}

TEST_F(ServerModesTest, HeadOfAStreamRouteSendsTheHeadOnly) {
  StreamProbe probe;
  StartServer({{"GET /events", StreamRoute(probe)}});
  Conn c(port());
  auto r = c.Request("HEAD", "/events");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.header("Content-Type"), "text/event-stream");
  EXPECT_TRUE(c.ServerClosed());
  EXPECT_EQ(probe.Sink(), nullptr);
}

// ---- filters, observer, OPTIONS, decoding, limits ----------------------------------------

TEST_F(ServerModesTest, FiltersAndObserver) {
  std::mutex mu;
  std::vector<std::string> seen;
  HttpServerOptions o;
  o.before = [](const HttpRequest& req) -> std::optional<HttpResponse> {
    if (req.header("x-block") == "1") return Text("blocked", 403);
    return std::nullopt;
  };
  o.after = [](const HttpRequest&, HttpResponse& r) { r.headers.emplace_back("X-After", "yes"); };
  o.observer = [&](const HttpRequest& req, const HttpResponse& r, double ms) {
    std::lock_guard<std::mutex> lock(mu);
    EXPECT_GE(ms, 0.0);
    seen.push_back(req.route + "=" + std::to_string(r.status));
  };
  StartServer({{"GET /items/{id}", [](const HttpRequest& req) { return Text(req.route + " " + req.params.at("id")); }}},
              o);
  Conn c(port());
  auto r = c.Request("GET", "/items/7");
  EXPECT_EQ(r.body, "GET /items/{id} 7");
  EXPECT_EQ(r.header("X-After"), "yes");
  auto blocked = c.Request("GET", "/items/7", {{"X-Block", "1"}});
  EXPECT_EQ(blocked.status, 403);
  EXPECT_EQ(blocked.header("X-After"), "yes");
  auto missing = c.Request("GET", "/nothing");
  EXPECT_EQ(missing.status, 404);
  EXPECT_EQ(missing.header("X-After"), "yes");
  auto head = c.Request("HEAD", "/items/8");
  EXPECT_EQ(head.status, 200);
  std::lock_guard<std::mutex> lock(mu);
  EXPECT_EQ(seen, (std::vector<std::string>{"GET /items/{id}=200", "=403", "=404", "GET /items/{id}=200"}));
}

TEST_F(ServerModesTest, OptionsListsTheMethods) {
  Handler h = [](const HttpRequest&) { return Text("x"); };
  StartServer({{"GET /a", h}, {"POST /a", h}, {"GET /b/{id}", h}});
  Conn c(port());
  auto a = c.Request("OPTIONS", "/a");
  EXPECT_EQ(a.status, 204);
  EXPECT_EQ(a.header("Allow"), "GET, HEAD, OPTIONS, POST");
  EXPECT_EQ(c.Request("OPTIONS", "/b/1").header("Allow"), "GET, HEAD, OPTIONS");
  EXPECT_EQ(c.Request("OPTIONS", "/c").status, 404);
}

TEST_F(ServerModesTest, MalformedTargetsAre400) {
  StartServer({{"GET /p/{x}", [](const HttpRequest& req) { return Text(req.params.at("x") + "|" + req.query.at("q")); }}});
  Conn c(port());
  EXPECT_EQ(c.Request("GET", "/p/a%2Fb?q=%C3%A9+x").body, "a/b|\xC3\xA9 x");
  for (const char* bad : {"/p/%", "/p/%2", "/p/%g0", "/p/a?q=%", "/p/a?q=%x1", "/p/%0a", "/p/%7F"}) {
    auto r = c.Request("GET", bad);
    EXPECT_EQ(r.status, 400) << bad;
  }
}

TEST_F(ServerModesTest, LimitsAreOptions) {
  HttpServerOptions o;
  o.max_body_bytes = 100;
  o.max_header_bytes = 1024;
  o.max_connections = 1;
  StartServer({{"POST /echo", [](const HttpRequest& req) { return Text(req.body); }}}, o);
  {
    Conn c(port());
    EXPECT_EQ(c.Request("POST", "/echo", {}, std::string(100, 'b')).status, 200);
    // The only connection is open: another one is turned away.
    Conn other(port());
    EXPECT_EQ(other.ReadResponse().status, 503);
    EXPECT_EQ(c.Request("POST", "/echo", {}, std::string(101, 'b')).status, 413);
  }
  ASSERT_TRUE(WaitFor([&] { return server_->connections() == 0; }));
  Conn c(port());
  EXPECT_EQ(c.Request("POST", "/echo", {{"X-Pad", std::string(2000, 'p')}}, "x").status, 431);
}

TEST(ServerOptionsTest, BadOptionsAreErrors) {
  HttpServerOptions o;
  o.threads = 0;
  EXPECT_EQ(HttpServer::Start("127.0.0.1:0", {}, o).status().code(), StatusCode::kInvalidArgument);
  o = {};
  o.max_body_bytes = 0;
  EXPECT_EQ(HttpServer::Start("127.0.0.1:0", {}, o).status().code(), StatusCode::kInvalidArgument);
  o = {};
  o.request_timeout = std::chrono::milliseconds(0);
  EXPECT_EQ(HttpServer::Start("127.0.0.1:0", {}, o).status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace cityloop::console::testing
