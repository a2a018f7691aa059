// HttpServer: a small HTTP/1.1 server (keep-alive, bounded requests) for the
// console: the operational endpoints, the REST API (console/api.h) and its
// live stream. It owns an io_context and the threads that run it; handlers run
// on those threads, so a handler must be thread-safe when threads > 1 and must
// not block for long. Routes are fixed at Start. Start/Stop/port may be called
// from any thread; Stop must not be called from inside a handler.
//
// A handler answers in one of three ways (HttpResponse):
//   - a plain response (status, headers, body), sent at once;
//   - a deferred one (`deferred`): the handler returns at once and the
//     response is sent later from any thread through a Responder, or when a
//     timeout passes (the server thread is not held while waiting);
//   - a stream (`stream`): the status and headers are sent at once, then the
//     body is written over time through a StreamSink (Server-Sent Events).
//     Writes are queued per connection and written asynchronously on the
//     connection's strand; a client whose queue passes its limit, or that does
//     not take a write within the write timeout, is disconnected. Writing
//     never blocks the writer.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/metrics.h"
#include "core/status.h"

namespace cityloop::console {

struct HttpRequest {
  std::string method;  // "GET"
  std::string target;  // as sent: "/api/v1/cases?status=open"
  std::string path;    // percent-decoded, without the query: "/api/v1/cases"
  std::map<std::string, std::string> query;    // percent-decoded; '+' is a space; last one wins
  std::map<std::string, std::string> headers;  // names lower-cased
  std::string body;
  // Values of the "{name}" segments of the matched route pattern
  // ("GET /api/v1/cases/{id}" matched by "/api/v1/cases/CL-1" gives id=CL-1).
  std::map<std::string, std::string> params;
  // The matched route as registered ("GET /api/v1/cases/{id}"; a HEAD served
  // by a GET route gives the GET route; "" when no route matched).
  std::string route;
  std::string remote;  // the peer, "127.0.0.1:54321"

  // The header's value, or "" (name lower-case).
  const std::string& header(const std::string& name) const;
};

struct HttpResponse;

// Why a streamed response ended.
enum class StreamEnd {
  kEnded,         // the producer called End() and everything was written
  kClientClosed,  // the client went away
  kOverflow,      // more than max_queued writes waiting: the client is too slow
  kWriteTimeout,  // one write took longer than write_timeout: the client is too slow
  kWriteError,    // the connection failed
  kAborted,       // the producer called Abort()
  kServerStopped, // HttpServer::Stop
};
const char* StreamEndName(StreamEnd e);

// The producer's handle on a streamed body. Thread-safe; every method returns
// at once (work happens on the connection's strand).
class StreamSink {
 public:
  virtual ~StreamSink() = default;
  // Queues bytes for the client. False when the stream is over (or this write
  // overflowed the queue, which ends it with kOverflow): stop writing.
  virtual bool Write(std::string bytes) = 0;
  // Runs fn on the connection's strand once every queued byte is written
  // (at once, posted, when nothing is queued). Never runs after the stream ended.
  virtual void WhenDrained(std::function<void()> fn) = 0;
  // Ends the stream after the queued bytes (kEnded).
  virtual void End() = 0;
  // Ends the stream now, dropping what is queued.
  virtual void Abort(StreamEnd why = StreamEnd::kAborted) = 0;
  // Writes queued and not yet written.
  virtual size_t queued() const = 0;
};

struct StreamResponse {
  // Called once on the connection's strand after the status and headers are
  // queued. May write at once or keep the sink and write from any thread.
  std::function<void(std::shared_ptr<StreamSink>)> start;
  // Called once when the stream ends, on the connection's strand (or on the
  // thread running Stop). Not called for a HEAD request (no stream starts).
  std::function<void(StreamEnd)> on_close;
  size_t max_queued = 1024;  // writes waiting; one more ends the stream (kOverflow)
  std::chrono::milliseconds write_timeout{30000};
  // When nothing was written for this long, heartbeat_text is written (0: never).
  std::chrono::milliseconds heartbeat{0};
  std::string heartbeat_text = ":\n\n";
  // SO_SNDBUF of the connection (0: the system's): bytes the kernel buffers
  // for a client that does not read, before its queue starts to fill.
  int send_buffer_bytes = 0;
};

// Completes a deferred response. Thread-safe.
class Responder {
 public:
  virtual ~Responder() = default;
  // Sends r. The first Send, or the timeout, wins; later ones are ignored.
  virtual void Send(HttpResponse r) = 0;
  // Runs fn on the connection's strand (a server thread) unless the response
  // was sent by then. False when it will not run.
  virtual bool Post(std::function<void()> fn) = 0;
};

struct DeferredResponse {
  // Called once on the connection's strand right after the handler returned.
  std::function<void(std::shared_ptr<Responder>)> start;
  std::chrono::milliseconds timeout{3000};
  // The response when nothing was sent within timeout.
  std::function<HttpResponse()> on_timeout;
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  // extra headers
  // Who asked (a token's name), for the access log; never sent.
  std::string log_user;
  // At most one of these: see the file comment. status, content_type and
  // headers are sent with a stream's head; body is ignored.
  std::shared_ptr<StreamResponse> stream;
  std::shared_ptr<DeferredResponse> deferred;
};

// Must not throw across the server boundary in normal operation; if it does,
// the client gets 500 and the server keeps serving.
using Handler = std::function<HttpResponse(const HttpRequest&)>;

struct HttpServerOptions {
  static constexpr size_t kDefaultMaxBodyBytes = 1u << 20;
  int threads = 1;
  size_t max_body_bytes = kDefaultMaxBodyBytes;  // beyond: 413, and the connection closes
  size_t max_header_bytes = 16u << 10;           // request line + headers; beyond: 431
  // Reading one request (from its first byte, or idle on a kept-alive
  // connection) and writing one response; past it the connection closes.
  std::chrono::milliseconds request_timeout{60000};
  size_t max_connections = 0;  // open connections; beyond, new ones get 503 and close (0: no limit)
  bool access_log = false;     // one spdlog info line per request
  // Runs for every request that parsed, before routing; a response returned
  // here is sent instead of routing (e.g. a refused CORS origin).
  std::function<std::optional<HttpResponse>(const HttpRequest&)> before;
  // Runs on every response before it is sent, also on the server's own
  // errors (404, 405, 413, ...) and on the head of a stream (e.g. CORS headers).
  std::function<void(const HttpRequest&, HttpResponse&)> after;
  // Called once per request when its response (or a stream's head) is handed
  // to the connection, with the time since the request was read. req.route is
  // "" when no route matched (or the request did not parse).
  std::function<void(const HttpRequest& req, const HttpResponse& res, double ms)> observer;
};

class HttpServer {
 public:
  // listen: "HOST:PORT" ("127.0.0.1:8080", "0.0.0.0:0", "[::1]:8080",
  // "localhost:8080"); port 0 picks a free port, see port().
  // routes: "METHOD /path" -> handler. A path segment "{name}" matches any
  // one segment and is passed in HttpRequest::params; literal segments win
  // over patterns. A GET route also answers HEAD. OPTIONS on a routed path
  // answers 204 with Allow (unless an OPTIONS route is given).
  // A request target with a malformed percent-escape (or a control character
  // once decoded in its path) is 400.
  // Errors: kInvalidArgument for a malformed address or route, kUnavailable
  // when the address cannot be bound.
  static Result<std::unique_ptr<HttpServer>> Start(const std::string& listen,
                                                   std::map<std::string, Handler> routes, int threads = 1);
  static Result<std::unique_ptr<HttpServer>> Start(const std::string& listen,
                                                   std::map<std::string, Handler> routes,
                                                   HttpServerOptions options);
  ~HttpServer();  // Stop()s
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  uint16_t port() const;
  // Stops accepting, closes every connection (streams end with
  // kServerStopped) and joins the threads. Idempotent.
  void Stop();
  size_t connections() const;  // open now

  static constexpr size_t kMaxBodyBytes = HttpServerOptions::kDefaultMaxBodyBytes;

 private:
  struct Impl;
  explicit HttpServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// {"error":{"code":code,"message":message}} with the given status.
HttpResponse JsonError(int status, const std::string& code, const std::string& message);

// GET /metrics (registry.RenderPrometheus(), text/plain; version=0.0.4),
// GET /livez (200 {"status":"ok"}), GET /readyz (200 {"status":"ready"} while
// ready() is true, else 503 {"status":"starting"}; an empty ready means ready).
// registry must outlive the server; ready is called on server threads.
// GET /api/v1/snapshots/{id}: a camera event's snapshot JPEG (ids are in the
// signal's attributes snapshot / snapshot_annotated). fetch returns the
// bytes, nothing when there is no such snapshot (or retention removed it),
// or an error. Snapshots never change: clients may cache them.
using SnapshotFetch = std::function<Result<std::optional<std::string>>(const std::string& id)>;
void AddSnapshotRoutes(std::map<std::string, Handler>& routes, SnapshotFetch fetch);

std::map<std::string, Handler> OperationalRoutes(const MetricsRegistry& registry, std::function<bool()> ready);

}  // namespace cityloop::console
