// HttpServer on Boost.Beast: one acceptor and one Session per connection, each
// connection on its own strand of a shared io_context run by `threads`
// threads. The Router is immutable after Start and shared by every session.
//
// A Session reads a request, routes it and answers: a plain response is
// written with Beast; a deferred one waits (a timer on the strand, no thread
// held) for its Responder or its timeout; a stream writes its head and then
// the chunks its StreamSink queues, one async write at a time on the strand,
// while a one-byte read watches for the client going away. Anything posted to
// a strand from outside goes through ServerCore::Post, which refuses once
// Stop has begun, so producers on other threads never touch a dead io_context.
#include "console/http_server.h"

#include <algorithm>
#include <atomic>
#include <cctype>
#include <charconv>
#include <chrono>
#include <deque>
#include <exception>
#include <mutex>
#include <optional>
#include <thread>

// Asio's scheduler trips -Wnull-dereference once inlined (a thread-info
// pointer that is never null on an io_context thread); silence it for Boost only.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wnull-dereference"
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#pragma GCC diagnostic pop
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "console/http_parse.h"

namespace cityloop::console {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;

// ---- request parsing (console/http_parse.h) ----------------------------------

using http_parse::CopyHeaders;
using http_parse::FromBeast;
using http_parse::PathSegments;

std::string Join(const std::vector<std::string>& parts) {
  std::string out;
  for (const auto& p : parts) out += (out.empty() ? "" : ", ") + p;
  return out;
}

// ---- routing -------------------------------------------------------------------

// Every route with the same shape (literal segments, "{}" for parameters)
// shares one RouteNode holding a handler per method.
struct RouteNode {
  std::string pattern;                // "/api/v1/cases/{id}"
  std::vector<std::string> segments;  // literal text, or "{name}"
  std::map<std::string, Handler> by_method;

  static bool IsParam(const std::string& seg) {
    return seg.size() >= 2 && seg.front() == '{' && seg.back() == '}';
  }
  // Matches and fills params; `literal_mask` ranks matches (literal beats parameter).
  bool Match(const std::vector<std::string>& path, std::map<std::string, std::string>* params,
             std::vector<bool>* literal_mask) const {
    if (path.size() != segments.size()) return false;
    std::map<std::string, std::string> p;
    std::vector<bool> mask(segments.size());
    for (size_t i = 0; i < segments.size(); ++i) {
      if (IsParam(segments[i])) {
        if (path[i].empty()) return false;
        p[segments[i].substr(1, segments[i].size() - 2)] = path[i];
      } else {
        if (segments[i] != path[i]) return false;
        mask[i] = true;
      }
    }
    *params = std::move(p);
    *literal_mask = std::move(mask);
    return true;
  }
};

class Router {
 public:
  Status Add(const std::string& key, Handler handler) {
    const size_t space = key.find(' ');
    if (space == std::string::npos || space == 0) {
      return Status::InvalidArgument("route '" + key + "' is not 'METHOD /path'");
    }
    const std::string method = key.substr(0, space);
    const std::string path = key.substr(space + 1);
    for (char c : method) {
      if (c < 'A' || c > 'Z') return Status::InvalidArgument("route '" + key + "' has a bad method");
    }
    if (path.empty() || path.front() != '/' || path.find_first_of(" ?#") != std::string::npos) {
      return Status::InvalidArgument("route '" + key + "' has a bad path");
    }
    if (!handler) return Status::InvalidArgument("route '" + key + "' has no handler");
    auto segments = PathSegments(path);
    if (!segments) return Status::InvalidArgument("route '" + key + "' has a bad path");
    std::string shape;
    for (const auto& s : *segments) shape += "/" + (RouteNode::IsParam(s) ? std::string("{}") : s);
    auto [it, inserted] = nodes_.try_emplace(shape);
    if (inserted) {
      it->second.segments = *segments;
      it->second.pattern = path;
    } else if (it->second.segments != *segments) {
      return Status::InvalidArgument("route '" + key + "' names its parameters unlike another route of the same shape");
    }
    if (!it->second.by_method.emplace(method, std::move(handler)).second) {
      return Status::InvalidArgument("route '" + key + "' is given twice");
    }
    return Status::Ok();
  }

  // Routes req (its method and decoded path segments); sets req.params and req.route.
  HttpResponse Dispatch(HttpRequest& req, const std::vector<std::string>& path) const {
    const Handler* best = nullptr;
    const RouteNode* best_node = nullptr;
    const RouteNode* any_node = nullptr;
    std::string best_method;
    std::vector<bool> best_mask;
    std::map<std::string, std::string> best_params;
    std::vector<std::string> allowed;
    for (const auto& [shape, node] : nodes_) {
      std::map<std::string, std::string> params;
      std::vector<bool> mask;
      if (!node.Match(path, &params, &mask)) continue;
      if (!any_node) any_node = &node;
      std::string method;
      const Handler* h = Find(node, req.method, &method);
      if (!h) {
        for (const auto& [m, unused] : node.by_method) allowed.push_back(m);
        if (node.by_method.count("GET") && !node.by_method.count("HEAD")) allowed.push_back("HEAD");
        continue;
      }
      if (!best || mask > best_mask) {
        best = h;
        best_node = &node;
        best_method = method;
        best_mask = std::move(mask);
        best_params = std::move(params);
      }
    }
    if (!best) {
      if (allowed.empty()) return JsonError(404, "not_found", "no route for " + req.path);
      std::sort(allowed.begin(), allowed.end());
      allowed.erase(std::unique(allowed.begin(), allowed.end()), allowed.end());
      if (req.method == "OPTIONS") {
        allowed.push_back("OPTIONS");
        std::sort(allowed.begin(), allowed.end());
        req.route = "OPTIONS " + any_node->pattern;
        HttpResponse r;
        r.status = 204;
        r.content_type.clear();
        r.headers.emplace_back("Allow", Join(allowed));
        return r;
      }
      HttpResponse r = JsonError(405, "method_not_allowed", req.method + " is not allowed on " + req.path);
      r.headers.emplace_back("Allow", Join(allowed));
      return r;
    }
    req.params = std::move(best_params);
    req.route = best_method + " " + best_node->pattern;
    try {
      return (*best)(req);
    } catch (const std::exception& e) {
      spdlog::error("http handler for {} {} threw: {}", req.method, req.path, e.what());
      return JsonError(500, "internal", std::string("handler failed: ") + e.what());
    } catch (...) {
      spdlog::error("http handler for {} {} threw a non-exception", req.method, req.path);
      return JsonError(500, "internal", "handler failed");
    }
  }

  std::vector<std::string> Keys() const {
    std::vector<std::string> keys;
    for (const auto& [shape, node] : nodes_) {
      for (const auto& [m, h] : node.by_method) keys.push_back(m + " " + node.pattern);
    }
    return keys;
  }

 private:
  static const Handler* Find(const RouteNode& node, const std::string& method, std::string* found) {
    auto it = node.by_method.find(method);
    if (it == node.by_method.end() && method == "HEAD") it = node.by_method.find("GET");
    if (it == node.by_method.end()) return nullptr;
    *found = it->first;
    return &it->second;
  }

  std::map<std::string, RouteNode> nodes_;  // by shape
};

// ---- shared server state ---------------------------------------------------------

struct ServerCore {
  HttpServerOptions options;
  std::shared_ptr<const Router> router;
  std::atomic<size_t> connections{0};

  // Posts fn to a connection's strand unless Stop has begun.
  bool Post(const asio::any_io_executor& ex, std::function<void()> fn) {
    std::lock_guard<std::mutex> lock(post_mu_);
    if (!running_) return false;
    asio::post(ex, std::move(fn));
    return true;
  }
  void Shutdown() {
    std::lock_guard<std::mutex> lock(post_mu_);
    running_ = false;
  }

 private:
  std::mutex post_mu_;
  bool running_ = true;
};

// A connection's strand, for producers on other threads. The session clears
// it when it goes, so a sink or responder that outlives its connection (and
// maybe the io_context) holds no executor and posts nothing.
struct StrandRef {
  std::mutex mu;
  std::optional<asio::any_io_executor> ex;

  bool Post(ServerCore& core, std::function<void()> fn) {
    std::lock_guard<std::mutex> lock(mu);
    if (!ex) return false;
    return core.Post(*ex, std::move(fn));
  }
  void Clear() {
    std::optional<asio::any_io_executor> old;
    {
      std::lock_guard<std::mutex> lock(mu);
      old.swap(ex);
    }
  }
};

// ---- request/response conversion -------------------------------------------------

using BeastResponse = http::response<http::string_body>;

void AddHeaders(BeastResponse& res, const HttpResponse& r) {
  res.set(http::field::server, "cityloop");
  if (!r.content_type.empty()) res.set(http::field::content_type, r.content_type);
  for (const auto& [name, value] : r.headers) res.insert(name, value);
}

BeastResponse ToBeast(const HttpResponse& r, unsigned version, bool keep_alive, bool head) {
  const int status = r.status >= 100 && r.status <= 599 ? r.status : 500;
  BeastResponse res;
  res.version(version);
  res.result(static_cast<unsigned>(status));
  AddHeaders(res, r);
  if (status != 204 && status != 304) res.body() = r.body;
  res.keep_alive(keep_alive);
  res.prepare_payload();
  if (head) res.body().clear();  // Content-Length stays that of the GET body
  return res;
}

std::string Peer(const tcp::socket& socket) {
  beast::error_code ec;
  const auto ep = socket.remote_endpoint(ec);
  if (ec) return "";
  const auto addr = ep.address();
  return (addr.is_v6() ? "[" + addr.to_string() + "]" : addr.to_string()) + ":" + std::to_string(ep.port());
}

std::string Shorten(const std::string& s, size_t max) { return s.size() <= max ? s : s.substr(0, max) + "..."; }

// The queue of a streamed response: filled by the sink from any thread,
// drained by the session on its strand.
struct StreamQueue {
  std::mutex mu;
  std::deque<std::string> pending;
  size_t max_queued = 1024;
  bool writing = false;       // a write is in flight
  bool flush_posted = false;  // a FlushStream is on its way to the strand
  bool over = false;          // accepts nothing more
  bool end_requested = false;
  uint64_t writes_done = 0;
  std::vector<std::function<void()>> drained;
};

class Session;

class SessionSink : public StreamSink {
 public:
  SessionSink(std::weak_ptr<Session> session, std::shared_ptr<ServerCore> core, std::shared_ptr<StrandRef> strand,
              std::shared_ptr<StreamQueue> q)
      : session_(std::move(session)), core_(std::move(core)), strand_(std::move(strand)), q_(std::move(q)) {}

  bool Write(std::string bytes) override;
  void WhenDrained(std::function<void()> fn) override;
  void End() override;
  void Abort(StreamEnd why) override;
  size_t queued() const override {
    std::lock_guard<std::mutex> lock(q_->mu);
    return q_->pending.size();
  }

 private:
  void PostToSession(std::function<void(Session&)> fn);
  std::weak_ptr<Session> session_;
  std::shared_ptr<ServerCore> core_;
  std::shared_ptr<StrandRef> strand_;
  std::shared_ptr<StreamQueue> q_;
};

class SessionResponder : public Responder {
 public:
  SessionResponder(std::weak_ptr<Session> session, std::shared_ptr<ServerCore> core,
                   std::shared_ptr<StrandRef> strand, uint64_t generation)
      : session_(std::move(session)), core_(std::move(core)), strand_(std::move(strand)), generation_(generation) {}
  void Send(HttpResponse r) override;
  bool Post(std::function<void()> fn) override;

 private:
  std::weak_ptr<Session> session_;
  std::shared_ptr<ServerCore> core_;
  std::shared_ptr<StrandRef> strand_;
  uint64_t generation_;
  std::atomic<bool> sent_{false};
};

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, std::shared_ptr<ServerCore> core, bool reject)
      : stream_(std::move(socket)),
        core_(std::move(core)),
        reject_(reject),
        remote_(Peer(stream_.socket())),
        strand_ref_(std::make_shared<StrandRef>()),
        deferred_timer_(stream_.get_executor()),
        heartbeat_timer_(stream_.get_executor()),
        write_timer_(stream_.get_executor()) {
    strand_ref_->ex.emplace(stream_.get_executor());
    core_->connections.fetch_add(1);
  }

  ~Session() {
    strand_ref_->Clear();
    if (queue_) {
      std::lock_guard<std::mutex> lock(queue_->mu);
      queue_->over = true;
      queue_->drained.clear();
    }
    if (stream_resp_ && !stream_finished_ && stream_resp_->on_close) {
      try {
        stream_resp_->on_close(StreamEnd::kServerStopped);
      } catch (...) {
      }
    }
    core_->connections.fetch_sub(1);
  }

  void Run() {
    asio::dispatch(stream_.get_executor(), [self = shared_from_this()] {
      if (self->reject_) {
        self->version_ = 11;
        self->keep_alive_ = false;
        self->start_ = Clock::now();
        HttpResponse r = JsonError(503, "too_many_connections", "the server has too many open connections");
        r.headers.emplace_back("Retry-After", "1");
        self->SendPlain(std::move(r), /*close=*/true);
      } else {
        self->Read();
      }
    });
  }

  // ---- deferred responses (strand) ----
  void FinishDeferred(uint64_t generation, HttpResponse r) {
    if (generation != deferred_generation_ || !deferred_ || deferred_done_) return;
    deferred_done_ = true;
    deferred_timer_.cancel();
    std::shared_ptr<DeferredResponse> done = std::move(deferred_);
    done.reset();  // the producer's state goes now, on the strand
    if (r.stream || r.deferred) r = JsonError(500, "internal", "a deferred response cannot stream or defer again");
    SendPlain(std::move(r), !keep_alive_);
  }
  bool DeferredPending(uint64_t generation) const {
    return generation == deferred_generation_ && deferred_ && !deferred_done_;
  }

  // ---- streams (strand) ----
  void FlushStream() {
    if (stream_finished_) return;
    {
      std::lock_guard<std::mutex> lock(queue_->mu);
      queue_->flush_posted = false;
      if (queue_->writing || queue_->pending.empty()) return;
      write_buf_.clear();
      for (auto& p : queue_->pending) write_buf_ += p;
      queue_->pending.clear();
      queue_->writing = true;
    }
    const uint64_t gen = ++write_generation_;
    write_timer_.expires_after(stream_resp_->write_timeout);
    write_timer_.async_wait([self = shared_from_this(), gen](beast::error_code ec) {
      if (!ec && gen == self->write_generation_) self->FinishStream(StreamEnd::kWriteTimeout);
    });
    asio::async_write(stream_.socket(), asio::buffer(write_buf_),
                      beast::bind_front_handler(&Session::OnStreamWrite, shared_from_this()));
  }

  void FinishStream(StreamEnd why) {
    if (!stream_resp_ || stream_finished_) return;
    stream_finished_ = true;
    {
      std::lock_guard<std::mutex> lock(queue_->mu);
      queue_->over = true;
      queue_->pending.clear();
      queue_->drained.clear();
    }
    ++write_generation_;
    heartbeat_timer_.cancel();
    write_timer_.cancel();
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ec);
    stream_.socket().close(ec);
    std::shared_ptr<StreamResponse> resp = std::move(stream_resp_);
    if (resp->on_close) {
      try {
        resp->on_close(why);
      } catch (const std::exception& e) {
        spdlog::error("http stream on_close threw: {}", e.what());
      }
    }
    resp.reset();
  }
  bool StreamLive() const { return stream_resp_ && !stream_finished_; }

 private:
  void Read() {
    parser_.emplace();
    parser_->body_limit(core_->options.max_body_bytes);
    parser_->header_limit(static_cast<std::uint32_t>(core_->options.max_header_bytes));
    stream_.expires_after(core_->options.request_timeout);
    http::async_read(stream_, buffer_, *parser_, beast::bind_front_handler(&Session::OnRead, shared_from_this()));
  }

  void OnRead(beast::error_code ec, size_t /*bytes*/) {
    if (ec == http::error::end_of_stream) return Close();
    start_ = Clock::now();
    req_ = HttpRequest();
    req_.remote = remote_;
    version_ = 11;
    keep_alive_ = false;
    head_ = false;
    if (ec == http::error::body_limit) {
      const auto& h = parser_->get();
      req_.method = std::string(h.method_string());
      req_.target = std::string(h.target());
      CopyHeaders(h, &req_);
      version_ = h.version();
      return SendPlain(JsonError(413, "payload_too_large",
                                 "request body exceeds " + std::to_string(core_->options.max_body_bytes) + " bytes"),
                       true);
    }
    if (ec == http::error::header_limit) {
      return SendPlain(JsonError(431, "headers_too_large",
                                 "request headers exceed " + std::to_string(core_->options.max_header_bytes) +
                                     " bytes"),
                       true);
    }
    if (ec && ec.category() == http::make_error_code(http::error::end_of_stream).category()) {
      return SendPlain(JsonError(400, "bad_request", "malformed HTTP request: " + ec.message()), true);
    }
    if (ec) return;  // closed, reset or timed out: nothing to answer

    http::request<http::string_body> msg = parser_->release();
    version_ = msg.version();
    keep_alive_ = msg.keep_alive();
    head_ = msg.method() == http::verb::head;
    std::vector<std::string> segments;
    std::string error;
    HttpResponse response;
    if (!FromBeast(std::move(msg), &req_, &segments, &error)) {
      response = JsonError(400, "bad_request", error);
    } else {
      std::optional<HttpResponse> early;
      if (core_->options.before) {
        try {
          early = core_->options.before(req_);
        } catch (const std::exception& e) {
          early = JsonError(500, "internal", std::string("request filter failed: ") + e.what());
        }
      }
      response = early ? std::move(*early) : core_->router->Dispatch(req_, segments);
    }
    if (response.stream && response.deferred) response.deferred.reset();
    if (response.stream) return StartStream(std::move(response));
    if (response.deferred) return StartDeferred(std::move(response));
    SendPlain(std::move(response), !keep_alive_);
  }

  void After(HttpResponse& r) {
    if (!core_->options.after) return;
    try {
      core_->options.after(req_, r);
    } catch (const std::exception& e) {
      spdlog::error("http response filter threw: {}", e.what());
    }
  }

  void Observe(const HttpResponse& r, size_t bytes) {
    const double ms = std::chrono::duration<double, std::milli>(Clock::now() - start_).count();
    if (core_->options.access_log) {
      spdlog::info("http {} {} {} {:.1f}ms {}B remote={} user={} route=\"{}\"", req_.method.empty() ? "-" : req_.method,
                   Shorten(req_.target.empty() ? "-" : req_.target, 256), r.status, ms, bytes, remote_,
                   r.log_user.empty() ? "-" : r.log_user, req_.route);
    }
    if (core_->options.observer) {
      try {
        core_->options.observer(req_, r, ms);
      } catch (const std::exception& e) {
        spdlog::error("http observer threw: {}", e.what());
      }
    }
  }

  void SendPlain(HttpResponse r, bool close) {
    After(r);
    res_ = ToBeast(r, version_, keep_alive_ && !close, head_);
    Observe(r, res_.body().size());
    stream_.expires_after(core_->options.request_timeout);
    http::async_write(stream_, res_,
                      beast::bind_front_handler(&Session::OnWrite, shared_from_this(), res_.need_eof()));
  }

  void OnWrite(bool close, beast::error_code ec, size_t /*bytes*/) {
    if (ec) return;
    if (close) return Close();
    Read();
  }

  // Half-closes, then reads and drops what the client still sends until it
  // closes too (bounded): closing with unread input would reset the
  // connection and could destroy the response before the client read it
  // (a 413 sent while the body is still arriving).
  void Close() {
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
    if (ec) return;
    stream_.expires_after(std::min<std::chrono::milliseconds>(core_->options.request_timeout, std::chrono::seconds(5)));
    Drain();
  }
  void Drain() {
    stream_.async_read_some(asio::buffer(read_byte_, sizeof read_byte_),
                            [self = shared_from_this()](beast::error_code ec, size_t) {
                              if (!ec) self->Drain();
                            });
  }

  void StartDeferred(HttpResponse r) {
    deferred_ = std::move(r.deferred);
    deferred_done_ = false;
    const uint64_t gen = ++deferred_generation_;
    deferred_timer_.expires_after(deferred_->timeout);
    deferred_timer_.async_wait([self = shared_from_this(), gen](beast::error_code ec) {
      if (ec || !self->DeferredPending(gen)) return;
      HttpResponse timeout;
      try {
        timeout = self->deferred_->on_timeout ? self->deferred_->on_timeout()
                                              : JsonError(504, "timeout", "no response in time");
      } catch (const std::exception& e) {
        timeout = JsonError(500, "internal", std::string("timeout handler failed: ") + e.what());
      }
      self->FinishDeferred(gen, std::move(timeout));
    });
    auto responder = std::make_shared<SessionResponder>(weak_from_this(), core_, strand_ref_, gen);
    std::shared_ptr<DeferredResponse> d = deferred_;
    try {
      if (d->start) d->start(responder);
    } catch (const std::exception& e) {
      spdlog::error("http deferred start for {} {} threw: {}", req_.method, req_.path, e.what());
      FinishDeferred(gen, JsonError(500, "internal", std::string("handler failed: ") + e.what()));
    }
  }

  void StartStream(HttpResponse r) {
    After(r);
    keep_alive_ = false;
    const int status = r.status >= 100 && r.status <= 599 ? r.status : 500;
    std::string head = std::string(version_ == 10 ? "HTTP/1.0 " : "HTTP/1.1 ") + std::to_string(status) + " " +
                       std::string(http::obsolete_reason(static_cast<http::status>(status))) + "\r\n";
    head += "Server: cityloop\r\n";
    if (!r.content_type.empty()) head += "Content-Type: " + r.content_type + "\r\n";
    for (const auto& [name, value] : r.headers) head += name + ": " + value + "\r\n";
    head += "Connection: close\r\n\r\n";
    Observe(r, 0);
    if (head_) {
      // HEAD: the head alone, no stream.
      stream_.expires_after(core_->options.request_timeout);
      write_buf_ = std::move(head);
      asio::async_write(stream_.socket(), asio::buffer(write_buf_),
                        [self = shared_from_this()](beast::error_code, size_t) { self->Close(); });
      return;
    }
    stream_resp_ = std::move(r.stream);
    stream_.expires_never();
    if (stream_resp_->send_buffer_bytes > 0) {
      beast::error_code ec;
      stream_.socket().set_option(asio::socket_base::send_buffer_size(stream_resp_->send_buffer_bytes), ec);
    }
    queue_ = std::make_shared<StreamQueue>();
    queue_->max_queued = std::max<size_t>(1, stream_resp_->max_queued);
    queue_->pending.push_back(std::move(head));
    auto sink = std::make_shared<SessionSink>(weak_from_this(), core_, strand_ref_, queue_);
    FlushStream();
    WatchClient();
    if (stream_resp_->heartbeat.count() > 0) ArmHeartbeat(0);
    std::shared_ptr<StreamResponse> resp = stream_resp_;
    try {
      if (resp->start) resp->start(sink);
    } catch (const std::exception& e) {
      spdlog::error("http stream start for {} threw: {}", req_.path, e.what());
      FinishStream(StreamEnd::kAborted);
    }
  }

  // A one-byte read that completes when the client goes away (a stream's
  // client sends nothing more; anything it does send is ignored).
  void WatchClient() {
    stream_.socket().async_read_some(asio::buffer(read_byte_, sizeof read_byte_),
                                     [self = shared_from_this()](beast::error_code ec, size_t) {
                                       if (!self->StreamLive()) return;
                                       if (ec) return self->FinishStream(StreamEnd::kClientClosed);
                                       self->WatchClient();
                                     });
  }

  void ArmHeartbeat(uint64_t writes_seen) {
    heartbeat_timer_.expires_after(stream_resp_->heartbeat);
    heartbeat_timer_.async_wait([self = shared_from_this(), writes_seen](beast::error_code ec) {
      if (ec || !self->StreamLive()) return;
      uint64_t writes = 0;
      bool idle = false;
      {
        std::lock_guard<std::mutex> lock(self->queue_->mu);
        writes = self->queue_->writes_done;
        idle = writes == writes_seen && !self->queue_->writing && self->queue_->pending.empty();
        if (idle && !self->queue_->over) self->queue_->pending.push_back(self->stream_resp_->heartbeat_text);
      }
      if (idle) self->FlushStream();
      self->ArmHeartbeat(idle ? writes + 1 : writes);
    });
  }

  void OnStreamWrite(beast::error_code ec, size_t /*bytes*/) {
    ++write_generation_;
    write_timer_.cancel();
    if (!StreamLive()) return;
    if (ec) return FinishStream(StreamEnd::kWriteError);
    std::vector<std::function<void()>> drained;
    bool more = false, end = false;
    {
      std::lock_guard<std::mutex> lock(queue_->mu);
      queue_->writing = false;
      ++queue_->writes_done;
      more = !queue_->pending.empty();
      if (!more) {
        drained.swap(queue_->drained);
        end = queue_->end_requested;
      }
    }
    if (more) return FlushStream();
    for (auto& fn : drained) {
      if (!StreamLive()) return;
      try {
        fn();
      } catch (const std::exception& e) {
        spdlog::error("http stream drain callback threw: {}", e.what());
        return FinishStream(StreamEnd::kAborted);
      }
    }
    if (end && StreamLive()) {
      bool still_idle = false;
      {
        std::lock_guard<std::mutex> lock(queue_->mu);
        still_idle = !queue_->writing && queue_->pending.empty();
      }
      if (still_idle) FinishStream(StreamEnd::kEnded);
    }
  }

  beast::tcp_stream stream_;
  std::shared_ptr<ServerCore> core_;
  bool reject_;
  std::string remote_;
  std::shared_ptr<StrandRef> strand_ref_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  BeastResponse res_;

  // The request being answered.
  HttpRequest req_;
  Clock::time_point start_;
  unsigned version_ = 11;
  bool keep_alive_ = false;
  bool head_ = false;

  // Deferred.
  std::shared_ptr<DeferredResponse> deferred_;
  uint64_t deferred_generation_ = 0;
  bool deferred_done_ = true;
  asio::steady_timer deferred_timer_;

  // Stream.
  std::shared_ptr<StreamResponse> stream_resp_;
  std::shared_ptr<StreamQueue> queue_;
  bool stream_finished_ = false;
  std::string write_buf_;
  uint64_t write_generation_ = 0;
  char read_byte_[64];
  asio::steady_timer heartbeat_timer_;
  asio::steady_timer write_timer_;
};

void SessionSink::PostToSession(std::function<void(Session&)> fn) {
  strand_->Post(*core_, [w = session_, fn = std::move(fn)] {
    if (auto s = w.lock()) fn(*s);
  });
}

bool SessionSink::Write(std::string bytes) {
  bool post_flush = false, overflow = false;
  {
    std::lock_guard<std::mutex> lock(q_->mu);
    if (q_->over) return false;
    if (q_->pending.size() >= q_->max_queued) {
      q_->over = overflow = true;
    } else {
      q_->pending.push_back(std::move(bytes));
      if (!q_->writing && !q_->flush_posted) post_flush = q_->flush_posted = true;
    }
  }
  if (overflow) {
    PostToSession([](Session& s) { s.FinishStream(StreamEnd::kOverflow); });
    return false;
  }
  if (post_flush) PostToSession([](Session& s) { s.FlushStream(); });
  return true;
}

void SessionSink::WhenDrained(std::function<void()> fn) {
  {
    std::lock_guard<std::mutex> lock(q_->mu);
    if (q_->over) return;
    if (q_->writing || !q_->pending.empty()) {
      q_->drained.push_back(std::move(fn));
      return;
    }
  }
  PostToSession([fn = std::move(fn)](Session& s) {
    if (s.StreamLive()) fn();
  });
}

void SessionSink::End() {
  bool idle = false;
  {
    std::lock_guard<std::mutex> lock(q_->mu);
    if (q_->over) return;
    q_->end_requested = true;
    idle = !q_->writing && q_->pending.empty() && !q_->flush_posted;
  }
  if (idle) PostToSession([](Session& s) { s.FinishStream(StreamEnd::kEnded); });
}

void SessionSink::Abort(StreamEnd why) {
  {
    std::lock_guard<std::mutex> lock(q_->mu);
    q_->over = true;
  }
  PostToSession([why](Session& s) { s.FinishStream(why); });
}

void SessionResponder::Send(HttpResponse r) {
  if (sent_.exchange(true)) return;
  strand_->Post(*core_, [w = session_, gen = generation_, r = std::move(r)]() mutable {
    if (auto s = w.lock()) s->FinishDeferred(gen, std::move(r));
  });
}

bool SessionResponder::Post(std::function<void()> fn) {
  if (sent_.load()) return false;
  return strand_->Post(*core_, [w = session_, gen = generation_, fn = std::move(fn)] {
    auto s = w.lock();
    if (s && s->DeferredPending(gen)) fn();
  });
}

// ---- listen address ------------------------------------------------------------

struct HostPort {
  std::string host;
  uint16_t port = 0;
};

Result<HostPort> ParseListen(const std::string& listen) {
  HostPort hp;
  std::string port_text;
  if (!listen.empty() && listen.front() == '[') {
    const size_t close = listen.find(']');
    if (close == std::string::npos || close + 1 >= listen.size() || listen[close + 1] != ':') {
      return Status::InvalidArgument("listen address '" + listen + "' is not [HOST]:PORT");
    }
    hp.host = listen.substr(1, close - 1);
    port_text = listen.substr(close + 2);
  } else {
    const size_t colon = listen.rfind(':');
    if (colon == std::string::npos) return Status::InvalidArgument("listen address '" + listen + "' is not HOST:PORT");
    hp.host = listen.substr(0, colon);
    port_text = listen.substr(colon + 1);
    if (hp.host.find(':') != std::string::npos) {
      return Status::InvalidArgument("listen address '" + listen + "': write IPv6 hosts as [HOST]:PORT");
    }
  }
  unsigned port = 0;
  auto [end, err] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (port_text.empty() || err != std::errc() || end != port_text.data() + port_text.size() || port > 65535) {
    return Status::InvalidArgument("listen address '" + listen + "' has a bad port '" + port_text + "'");
  }
  hp.port = static_cast<uint16_t>(port);
  if (hp.host.empty()) hp.host = "0.0.0.0";
  return hp;
}

}  // namespace

const std::string& HttpRequest::header(const std::string& name) const {
  static const std::string kEmpty;
  auto it = headers.find(name);
  return it == headers.end() ? kEmpty : it->second;
}

const char* StreamEndName(StreamEnd e) {
  switch (e) {
    case StreamEnd::kEnded: return "ended";
    case StreamEnd::kClientClosed: return "client_closed";
    case StreamEnd::kOverflow: return "queue_full";
    case StreamEnd::kWriteTimeout: return "write_timeout";
    case StreamEnd::kWriteError: return "write_error";
    case StreamEnd::kAborted: return "aborted";
    case StreamEnd::kServerStopped: return "server_stopped";
  }
  return "ended";
}

// ---- HttpServer ----------------------------------------------------------------

struct HttpServer::Impl {
  std::optional<asio::io_context> ioc;
  std::optional<tcp::acceptor> acceptor;
  std::shared_ptr<ServerCore> core;
  std::vector<std::thread> threads;
  uint16_t port = 0;
  std::mutex stop_mu;
  bool stopped = false;

  void Accept() {
    acceptor->async_accept(asio::make_strand(*ioc), [this](beast::error_code ec, tcp::socket socket) {
      if (ec == asio::error::operation_aborted || !acceptor->is_open()) return;
      if (!ec) {
        const size_t limit = core->options.max_connections;
        const bool reject = limit > 0 && core->connections.load() >= limit;
        std::make_shared<Session>(std::move(socket), core, reject)->Run();
      } else {
        spdlog::warn("http accept failed: {}", ec.message());
      }
      Accept();
    });
  }
};

HttpServer::HttpServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

HttpServer::~HttpServer() { Stop(); }

Result<std::unique_ptr<HttpServer>> HttpServer::Start(const std::string& listen,
                                                      std::map<std::string, Handler> routes, int threads) {
  HttpServerOptions options;
  options.threads = threads;
  return Start(listen, std::move(routes), std::move(options));
}

Result<std::unique_ptr<HttpServer>> HttpServer::Start(const std::string& listen,
                                                      std::map<std::string, Handler> routes,
                                                      HttpServerOptions options) {
  if (options.threads < 1) return Status::InvalidArgument("http server needs at least one thread");
  if (options.max_body_bytes == 0 || options.max_header_bytes < 256) {
    return Status::InvalidArgument("http server limits are too small");
  }
  if (options.request_timeout.count() <= 0) return Status::InvalidArgument("http request timeout must be positive");
  auto hp = ParseListen(listen);
  if (!hp.ok()) return hp.status();

  auto router = std::make_shared<Router>();
  for (auto& [key, handler] : routes) CL_RETURN_IF_ERROR(router->Add(key, std::move(handler)));

  auto impl = std::make_unique<Impl>();
  const int threads = options.threads;
  impl->ioc.emplace(threads);
  impl->core = std::make_shared<ServerCore>();
  impl->core->options = std::move(options);
  impl->core->router = std::move(router);

  beast::error_code ec;
  tcp::endpoint endpoint;
  const auto address = asio::ip::make_address(hp->host, ec);
  if (!ec) {
    endpoint = tcp::endpoint(address, hp->port);
  } else {
    tcp::resolver resolver(*impl->ioc);
    auto results = resolver.resolve(hp->host, std::to_string(hp->port), tcp::resolver::passive, ec);
    if (ec || results.empty()) {
      return Status::InvalidArgument("listen address '" + listen + "': cannot resolve host '" + hp->host +
                                     "': " + ec.message());
    }
    endpoint = results.begin()->endpoint();
  }

  impl->acceptor.emplace(*impl->ioc);
  auto fail = [&](const char* what) {
    return Status::Unavailable(std::string("cannot listen on ") + listen + ": " + what + ": " + ec.message());
  };
  impl->acceptor->open(endpoint.protocol(), ec);
  if (ec) return fail("open");
  impl->acceptor->set_option(asio::socket_base::reuse_address(true), ec);
  if (ec) return fail("set SO_REUSEADDR");
  impl->acceptor->bind(endpoint, ec);
  if (ec) return fail("bind");
  impl->acceptor->listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return fail("listen");
  impl->port = impl->acceptor->local_endpoint(ec).port();
  if (ec) return fail("local address");

  impl->Accept();
  Impl* raw = impl.get();
  for (int i = 0; i < threads; ++i) {
    impl->threads.emplace_back([raw] {
      while (true) {
        try {
          raw->ioc->run();
          return;
        } catch (const std::exception& e) {
          spdlog::error("http server thread: {}", e.what());
        }
      }
    });
  }
  return std::unique_ptr<HttpServer>(new HttpServer(std::move(impl)));
}

uint16_t HttpServer::port() const { return impl_->port; }

size_t HttpServer::connections() const { return impl_->core->connections.load(); }

void HttpServer::Stop() {
  std::lock_guard<std::mutex> lock(impl_->stop_mu);
  if (impl_->stopped) return;
  impl_->stopped = true;
  for (const auto& t : impl_->threads) {
    CL_CHECK_MSG(t.get_id() != std::this_thread::get_id(), "HttpServer::Stop called from a handler");
  }
  impl_->core->Shutdown();  // producers on other threads post nothing more
  impl_->ioc->stop();
  for (auto& t : impl_->threads) t.join();
  impl_->threads.clear();
  // Threads are gone: close the listener, then destroy the io_context, which
  // destroys every pending operation and with it every session and socket.
  impl_->acceptor.reset();
  impl_->ioc.reset();
}

HttpResponse JsonError(int status, const std::string& code, const std::string& message) {
  nlohmann::json j = {{"error", {{"code", code}, {"message", message}}}};
  HttpResponse r;
  r.status = status;
  r.content_type = "application/json";
  r.body = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  return r;
}

std::map<std::string, Handler> OperationalRoutes(const MetricsRegistry& registry, std::function<bool()> ready) {
  std::map<std::string, Handler> routes;
  routes["GET /metrics"] = [&registry](const HttpRequest&) {
    HttpResponse r;
    r.content_type = "text/plain; version=0.0.4";
    r.body = registry.RenderPrometheus();
    return r;
  };
  routes["GET /livez"] = [](const HttpRequest&) {
    HttpResponse r;
    r.body = R"({"status":"ok"})";
    return r;
  };
  routes["GET /readyz"] = [ready = std::move(ready)](const HttpRequest&) {
    HttpResponse r;
    if (!ready || ready()) {
      r.body = R"({"status":"ready"})";
    } else {
      r.status = 503;
      r.body = R"({"status":"starting"})";
    }
    return r;
  };
  return routes;
}

void AddSnapshotRoutes(std::map<std::string, Handler>& routes, SnapshotFetch fetch) {
  routes["GET /api/v1/snapshots/{id}"] = [fetch = std::move(fetch)](const HttpRequest& req) {
    HttpResponse r;
    const auto error = [&](int status, const char* code, const std::string& message) {
      r.status = status;
      r.content_type = "application/json";
      r.body = nlohmann::json{{"error", {{"code", code}, {"message", message}}}}.dump();
      return r;
    };
    const std::string& id = req.params.at("id");
    auto got = fetch(id);
    if (!got.ok()) return error(500, "internal", got.status().message());
    if (!*got) return error(404, "not_found", "no snapshot '" + id + "' (never taken, or removed by retention)");
    r.content_type = "image/jpeg";
    r.body = std::move(**got);
    // private: behind the API's tokens, shared caches must not keep them.
    r.headers.emplace_back("Cache-Control", "private, max-age=31536000, immutable");
    return r;
  };
}

}  // namespace cityloop::console
