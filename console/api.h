// The console's HTTP service: the REST API (docs/openapi.yaml), the live
// stream (Server-Sent Events), the operational endpoints and the static web
// console, on one HttpServer. The engine side makes a console::Backend and
// calls ApiServer::Start; nothing else is needed:
//
//   auto api = console::ApiServer::Start(backend, cfg.api, metrics, args.listen);
//   if (!api.ok()) ...;            // bad address / port in use / bad tokens
//   ... (*api)->port() ...
//   (*api)->Stop();                // before backend and metrics go away
//
// Routes (every /api/v1 one needs `Authorization: Bearer TOKEN`, see auth.h):
//   GET  /api/v1/cases                 filtered, district-scoped, cursor pages
//   GET  /api/v1/cases/{id}            case + timeline + snapshots + recommended units
//   POST /api/v1/cases/{id}/actions    operator command; waits api.action_wait for the outcome
//   GET  /api/v1/kpi                   KPI book by group and local dates
//   GET  /api/v1/units, /api/v1/city, /api/v1/whoami
//   GET  /api/v1/snapshots/{id}        camera snapshot JPEG
//   GET  /api/v1/stream                SSE, resumable with Last-Event-ID
//   GET  /metrics, /livez, /readyz     no token (Prometheus, probes)
//   GET  /, /{file}                    the web console (api.web_root), no token
// Tokens are accepted in the Authorization header only, also for the stream
// (the web console reads it with fetch(), which can send headers; a token in
// a URL would end up in access logs and browser history).
//
// Metrics registered: cityloop_http_requests_total{route,code},
// cityloop_http_request_ms{route} (histogram), cityloop_stream_clients,
// cityloop_stream_dropped_clients_total{reason}, cityloop_api_commands_total{outcome}.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "console/backend.h"
#include "core/config.h"
#include "core/metrics.h"
#include "core/status.h"

namespace cityloop::console {

class ApiServer {
 public:
  // Starts serving on `listen` ("" = options.listen) with options.threads
  // threads. backend and metrics must outlive the server (Stop it first).
  // Errors: kInvalidArgument for a bad address or token table, kUnavailable
  // when the address cannot be bound.
  static Result<std::unique_ptr<ApiServer>> Start(Backend& backend, const ApiOptions& options,
                                                  MetricsRegistry& metrics, const std::string& listen = "");
  ~ApiServer();  // Stop()s
  ApiServer(const ApiServer&) = delete;
  ApiServer& operator=(const ApiServer&) = delete;

  uint16_t port() const;
  // Ends every stream, unsubscribes from the hub and stops the HTTP server.
  // Idempotent; not from a handler.
  void Stop();

  size_t stream_clients() const;  // SSE clients connected now
  // Blocks until every event published to the hub so far has reached the
  // streams and waiting actions (they are fanned out on their own thread).
  void WaitEventsDelivered();
  // Every route as "METHOD /pattern" (what docs/openapi.yaml must describe).
  std::vector<std::string> routes() const;

  struct State;

 private:
  ApiServer() = default;
  std::shared_ptr<State> state_;
  struct ServerHolder;
  std::unique_ptr<ServerHolder> server_;
};

}  // namespace cityloop::console
