#include "console/http_parse.h"

#include <algorithm>
#include <cctype>

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wnull-dereference"
#include <boost/asio/buffer.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#pragma GCC diagnostic pop

namespace cityloop::console::http_parse {
namespace {

namespace http = boost::beast::http;

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
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

bool HasControl(std::string_view s) {
  return std::any_of(s.begin(), s.end(), [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; });
}

std::string Lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

}  // namespace

std::optional<std::string> PercentDecode(std::string_view s, bool plus_is_space) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (c == '%') {
      if (i + 2 >= s.size()) return std::nullopt;
      const int hi = HexValue(s[i + 1]);
      const int lo = HexValue(s[i + 2]);
      if (hi < 0 || lo < 0) return std::nullopt;
      out.push_back(static_cast<char>(hi * 16 + lo));
      i += 2;
      continue;
    }
    out.push_back(plus_is_space && c == '+' ? ' ' : c);
  }
  return out;
}

std::optional<std::vector<std::string>> PathSegments(std::string_view raw_path) {
  if (!raw_path.empty() && raw_path.front() == '/') raw_path.remove_prefix(1);
  std::vector<std::string> segments;
  for (auto part : SplitView(raw_path, '/')) {
    auto decoded = PercentDecode(part, false);
    if (!decoded || HasControl(*decoded)) return std::nullopt;
    segments.push_back(std::move(*decoded));
  }
  return segments;
}

std::optional<std::map<std::string, std::string>> ParseQuery(std::string_view q) {
  std::map<std::string, std::string> out;
  if (q.empty()) return out;
  for (auto pair : SplitView(q, '&')) {
    if (pair.empty()) continue;
    const size_t eq = pair.find('=');
    auto key = PercentDecode(pair.substr(0, eq), true);
    auto value = eq == std::string_view::npos ? std::optional<std::string>("")
                                              : PercentDecode(pair.substr(eq + 1), true);
    if (!key || !value) return std::nullopt;
    out[std::move(*key)] = std::move(*value);
  }
  return out;
}

void CopyHeaders(const http::request_header<>& req, HttpRequest* out) {
  for (const auto& field : req) {
    const auto n = field.name_string();
    std::string name = Lower(std::string_view(n.data(), n.size()));
    auto [it, inserted] = out->headers.try_emplace(name, std::string(field.value()));
    if (!inserted) it->second += ", " + std::string(field.value());
  }
}

bool FromBeast(http::request<http::string_body>&& req, HttpRequest* out, std::vector<std::string>* segments,
               std::string* error) {
  out->method = std::string(req.method_string());
  out->target = std::string(req.target());
  CopyHeaders(req, out);
  out->body = std::move(req.body());
  const std::string_view target(out->target);
  const size_t q = target.find('?');
  const std::string_view raw_path = target.substr(0, q);
  auto path = PercentDecode(raw_path, false);
  auto segs = PathSegments(raw_path);
  if (!path || !segs) {
    *error = "the request path has a malformed percent-escape or a control character";
    out->path = std::string(raw_path);
    return false;
  }
  out->path = std::move(*path);
  *segments = std::move(*segs);
  if (q != std::string_view::npos) {
    auto query = ParseQuery(target.substr(q + 1));
    if (!query) {
      *error = "the query string has a malformed percent-escape";
      return false;
    }
    out->query = std::move(*query);
  }
  return true;
}

ParseOutcome ParseRequest(std::string_view bytes, size_t max_header_bytes, size_t max_body_bytes, ParsedRequest* out) {
  http::request_parser<http::string_body> parser;
  parser.body_limit(max_body_bytes);
  parser.header_limit(static_cast<std::uint32_t>(max_header_bytes));
  parser.eager(true);
  boost::beast::error_code ec;
  size_t used = 0;
  while (!parser.is_done()) {
    const size_t n = parser.put(boost::asio::buffer(bytes.data() + used, bytes.size() - used), ec);
    used += n;
    if (ec == http::error::need_more) {
      ec = {};
      if (n == 0 || used >= bytes.size()) {
        // What the connection sees at the end of the bytes: EOF.
        parser.put_eof(ec);
        if (ec || !parser.is_done()) {
          out->consumed = used;
          out->error = ec ? ec.message() : "the request is incomplete";
          return ParseOutcome::kIncomplete;
        }
        break;
      }
      continue;
    }
    if (ec) break;
    if (n == 0) break;  // nothing taken and no error: no progress possible
  }
  out->consumed = used;
  if (ec == http::error::body_limit) {
    out->error = "request body exceeds " + std::to_string(max_body_bytes) + " bytes";
    return ParseOutcome::kBodyTooLarge;
  }
  if (ec == http::error::header_limit) {
    out->error = "request headers exceed " + std::to_string(max_header_bytes) + " bytes";
    return ParseOutcome::kHeadersTooLarge;
  }
  if (ec) {
    out->error = "malformed HTTP request: " + ec.message();
    return ParseOutcome::kMalformed;
  }
  if (!parser.is_done()) {
    out->error = "the request is incomplete";
    return ParseOutcome::kIncomplete;
  }
  http::request<http::string_body> msg = parser.release();
  out->version = msg.version();
  out->keep_alive = msg.keep_alive();
  out->head = msg.method() == http::verb::head;
  if (!FromBeast(std::move(msg), &out->request, &out->segments, &out->error)) return ParseOutcome::kBadTarget;
  return ParseOutcome::kOk;
}

}  // namespace cityloop::console::http_parse
