// HttpServer: a small HTTP/1.1 server (keep-alive, 1 MiB request bodies) for
// the console: the operational endpoints now, the REST API later. It owns an
// io_context and the threads that run it; handlers run on those threads, so a
// handler must be thread-safe when threads > 1 and must not block for long.
// Routes are fixed at Start. Start/Stop/port may be called from any thread;
// Stop must not be called from inside a handler.
#pragma once

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
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  // extra headers
};

// Must not throw across the server boundary in normal operation; if it does,
// the client gets 500 and the server keeps serving.
using Handler = std::function<HttpResponse(const HttpRequest&)>;

class HttpServer {
 public:
  // listen: "HOST:PORT" ("127.0.0.1:8080", "0.0.0.0:0", "[::1]:8080",
  // "localhost:8080"); port 0 picks a free port, see port().
  // routes: "METHOD /path" -> handler. A path segment "{name}" matches any
  // one segment and is passed in HttpRequest::params; literal segments win
  // over patterns. A GET route also answers HEAD.
  // Errors: kInvalidArgument for a malformed address or route, kUnavailable
  // when the address cannot be bound.
  static Result<std::unique_ptr<HttpServer>> Start(const std::string& listen,
                                                   std::map<std::string, Handler> routes, int threads = 1);
  ~HttpServer();  // Stop()s
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  uint16_t port() const;
  // Stops accepting, closes every connection and joins the threads. Idempotent.
  void Stop();

  static constexpr size_t kMaxBodyBytes = 1u << 20;

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
