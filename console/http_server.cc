// HttpServer on Boost.Beast: one acceptor and one Session per connection, each
// connection on its own strand of a shared io_context run by `threads`
// threads. The Router is immutable after Start and shared by every session.
#include "console/http_server.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <chrono>
#include <exception>
#include <mutex>
#include <optional>
#include <thread>

#include <nlohmann/json.hpp>

// Asio's scheduler trips -Wnull-dereference once inlined (a thread-info
// pointer that is never null on an io_context thread); silence it for Boost only.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wnull-dereference"
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#pragma GCC diagnostic pop
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

namespace cityloop::console {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

constexpr auto kIdleTimeout = std::chrono::seconds(60);

// ---- URL helpers -------------------------------------------------------------

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Decodes %XX escapes (a malformed escape stays as written); in a query,
// '+' stands for a space.
std::string PercentDecode(std::string_view s, bool plus_is_space) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (c == '%' && i + 2 < s.size()) {
      const int hi = HexValue(s[i + 1]);
      const int lo = HexValue(s[i + 2]);
      if (hi >= 0 && lo >= 0) {
        out.push_back(static_cast<char>(hi * 16 + lo));
        i += 2;
        continue;
      }
    }
    out.push_back(plus_is_space && c == '+' ? ' ' : c);
  }
  return out;
}

std::vector<std::string_view> SplitView(std::string_view s, char sep) {
  std::vector<std::string_view> parts;
  size_t start = 0;
  while (true) {
    const size_t pos = s.find(sep, start);
    parts.push_back(s.substr(start, pos == std::string_view::npos ? std::string_view::npos : pos - start));
    if (pos == std::string_view::npos) return parts;
    start = pos + 1;
  }
}

// "/a/b" -> {"a", "b"}; "/" -> {""}.
std::vector<std::string> PathSegments(std::string_view raw_path) {
  if (!raw_path.empty() && raw_path.front() == '/') raw_path.remove_prefix(1);
  std::vector<std::string> segments;
  for (auto part : SplitView(raw_path, '/')) segments.push_back(PercentDecode(part, false));
  return segments;
}

std::map<std::string, std::string> ParseQuery(std::string_view q) {
  std::map<std::string, std::string> out;
  if (q.empty()) return out;
  for (auto pair : SplitView(q, '&')) {
    if (pair.empty()) continue;
    const size_t eq = pair.find('=');
    std::string key = PercentDecode(pair.substr(0, eq), true);
    std::string value = eq == std::string_view::npos ? "" : PercentDecode(pair.substr(eq + 1), true);
    out[std::move(key)] = std::move(value);
  }
  return out;
}

std::string Lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

// ---- routing -------------------------------------------------------------------

// Every route with the same shape (literal segments, "{}" for parameters)
// shares one RouteNode holding a handler per method.
struct RouteNode {
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
    std::vector<std::string> segments = PathSegments(path);
    std::string shape;
    for (const auto& s : segments) shape += "/" + (RouteNode::IsParam(s) ? std::string("{}") : s);
    auto [it, inserted] = nodes_.try_emplace(shape);
    if (inserted) {
      it->second.segments = segments;
    } else if (it->second.segments != segments) {
      return Status::InvalidArgument("route '" + key + "' names its parameters unlike another route of the same shape");
    }
    if (!it->second.by_method.emplace(method, std::move(handler)).second) {
      return Status::InvalidArgument("route '" + key + "' is given twice");
    }
    return Status::Ok();
  }

  HttpResponse Dispatch(HttpRequest& req, const std::string& raw_path) const {
    const std::vector<std::string> path = PathSegments(raw_path);
    const Handler* best = nullptr;
    std::vector<bool> best_mask;
    std::map<std::string, std::string> best_params;
    std::vector<std::string> allowed;
    for (const auto& [shape, node] : nodes_) {
      std::map<std::string, std::string> params;
      std::vector<bool> mask;
      if (!node.Match(path, &params, &mask)) continue;
      const Handler* h = Find(node, req.method);
      if (!h) {
        for (const auto& [m, unused] : node.by_method) allowed.push_back(m);
        if (node.by_method.count("GET") && !node.by_method.count("HEAD")) allowed.push_back("HEAD");
        continue;
      }
      if (!best || mask > best_mask) {
        best = h;
        best_mask = std::move(mask);
        best_params = std::move(params);
      }
    }
    if (!best) {
      if (allowed.empty()) return JsonError(404, "not_found", "no route for " + req.path);
      std::sort(allowed.begin(), allowed.end());
      allowed.erase(std::unique(allowed.begin(), allowed.end()), allowed.end());
      std::string allow;
      for (const auto& m : allowed) allow += (allow.empty() ? "" : ", ") + m;
      HttpResponse r = JsonError(405, "method_not_allowed", req.method + " is not allowed on " + req.path);
      r.headers.emplace_back("Allow", allow);
      return r;
    }
    req.params = std::move(best_params);
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

 private:
  static const Handler* Find(const RouteNode& node, const std::string& method) {
    auto it = node.by_method.find(method);
    if (it == node.by_method.end() && method == "HEAD") it = node.by_method.find("GET");
    return it == node.by_method.end() ? nullptr : &it->second;
  }

  std::map<std::string, RouteNode> nodes_;  // by shape
};

// ---- connections ---------------------------------------------------------------

using BeastResponse = http::response<http::string_body>;

BeastResponse ToBeast(const HttpResponse& r, unsigned version, bool keep_alive, bool head) {
  const int status = r.status >= 100 && r.status <= 599 ? r.status : 500;
  BeastResponse res;
  res.version(version);
  res.result(static_cast<unsigned>(status));
  res.set(http::field::server, "cityloop");
  if (!r.content_type.empty()) res.set(http::field::content_type, r.content_type);
  for (const auto& [name, value] : r.headers) res.insert(name, value);
  res.body() = r.body;
  res.keep_alive(keep_alive);
  res.prepare_payload();
  if (head) res.body().clear();  // Content-Length stays that of the GET body
  return res;
}

HttpRequest FromBeast(http::request<http::string_body>&& req, std::string* raw_path) {
  HttpRequest out;
  out.method = std::string(req.method_string());
  out.target = std::string(req.target());
  const std::string_view target(out.target);
  const size_t q = target.find('?');
  *raw_path = std::string(target.substr(0, q));
  out.path = PercentDecode(*raw_path, false);
  if (q != std::string_view::npos) out.query = ParseQuery(target.substr(q + 1));
  for (const auto& field : req) {
    const auto n = field.name_string();
    std::string name = Lower(std::string_view(n.data(), n.size()));
    auto [it, inserted] = out.headers.try_emplace(name, std::string(field.value()));
    if (!inserted) it->second += ", " + std::string(field.value());
  }
  out.body = std::move(req.body());
  return out;
}

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, std::shared_ptr<const Router> router)
      : stream_(std::move(socket)), router_(std::move(router)) {}

  void Run() {
    asio::dispatch(stream_.get_executor(), beast::bind_front_handler(&Session::Read, shared_from_this()));
  }

 private:
  void Read() {
    parser_.emplace();
    parser_->body_limit(HttpServer::kMaxBodyBytes);
    stream_.expires_after(kIdleTimeout);
    http::async_read(stream_, buffer_, *parser_, beast::bind_front_handler(&Session::OnRead, shared_from_this()));
  }

  void OnRead(beast::error_code ec, size_t /*bytes*/) {
    if (ec == http::error::end_of_stream) return Close();
    if (ec == http::error::body_limit) {
      return Send(JsonError(413, "payload_too_large",
                            "request body exceeds " + std::to_string(HttpServer::kMaxBodyBytes) + " bytes"),
                  11, false, false);
    }
    if (ec == http::error::header_limit) {
      return Send(JsonError(431, "headers_too_large", "request headers are too large"), 11, false, false);
    }
    if (ec && ec.category() == http::make_error_code(http::error::end_of_stream).category()) {
      return Send(JsonError(400, "bad_request", "malformed HTTP request: " + ec.message()), 11, false, false);
    }
    if (ec) return;  // closed, reset or timed out: nothing to answer

    http::request<http::string_body> req = parser_->release();
    const unsigned version = req.version();
    const bool keep_alive = req.keep_alive();
    const bool head = req.method() == http::verb::head;
    std::string raw_path;
    HttpRequest request = FromBeast(std::move(req), &raw_path);
    HttpResponse response = router_->Dispatch(request, raw_path);
    Send(response, version, keep_alive, head);
  }

  void Send(const HttpResponse& r, unsigned version, bool keep_alive, bool head) {
    res_ = ToBeast(r, version, keep_alive, head);
    stream_.expires_after(kIdleTimeout);
    http::async_write(stream_, res_,
                      beast::bind_front_handler(&Session::OnWrite, shared_from_this(), res_.need_eof()));
  }

  void OnWrite(bool close, beast::error_code ec, size_t /*bytes*/) {
    if (ec) return;
    if (close) return Close();
    Read();
  }

  void Close() {
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
  }

  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  BeastResponse res_;
  std::shared_ptr<const Router> router_;
};

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

// ---- HttpServer ----------------------------------------------------------------

struct HttpServer::Impl {
  std::optional<asio::io_context> ioc;
  std::optional<tcp::acceptor> acceptor;
  std::shared_ptr<const Router> router;
  std::vector<std::thread> threads;
  uint16_t port = 0;
  std::mutex stop_mu;
  bool stopped = false;

  void Accept() {
    acceptor->async_accept(asio::make_strand(*ioc), [this](beast::error_code ec, tcp::socket socket) {
      if (ec == asio::error::operation_aborted || !acceptor->is_open()) return;
      if (!ec) {
        std::make_shared<Session>(std::move(socket), router)->Run();
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
  if (threads < 1) return Status::InvalidArgument("http server needs at least one thread");
  auto hp = ParseListen(listen);
  if (!hp.ok()) return hp.status();

  auto router = std::make_shared<Router>();
  for (auto& [key, handler] : routes) CL_RETURN_IF_ERROR(router->Add(key, std::move(handler)));

  auto impl = std::make_unique<Impl>();
  impl->ioc.emplace(threads);
  impl->router = std::move(router);

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

void HttpServer::Stop() {
  std::lock_guard<std::mutex> lock(impl_->stop_mu);
  if (impl_->stopped) return;
  impl_->stopped = true;
  for (const auto& t : impl_->threads) {
    CL_CHECK_MSG(t.get_id() != std::this_thread::get_id(), "HttpServer::Stop called from a handler");
  }
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
    r.headers.emplace_back("Cache-Control", "public, max-age=31536000, immutable");
    return r;
  };
}

}  // namespace cityloop::console
