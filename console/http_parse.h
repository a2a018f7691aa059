// How HttpServer turns the bytes of one request into an HttpRequest: Beast's
// HTTP/1.1 parser (with the server's header and body limits), then the target
// decoded into path, path segments and query (percent-escapes, '+' in a
// query). Split out of http_server.cc so that it can be tested and fuzzed
// without sockets (fuzz/http_request_fuzz.cc); the server uses the same code.
#pragma once

#include <cstddef>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wnull-dereference"
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>
#pragma GCC diagnostic pop

#include "console/http_server.h"

namespace cityloop::console::http_parse {

// Decodes %XX escapes; nullopt for a malformed one ("%", "%4", "%zz"). In a
// query, '+' stands for a space.
std::optional<std::string> PercentDecode(std::string_view s, bool plus_is_space);

// "/a/b" -> {"a", "b"}; "/" -> {""}. nullopt for a malformed escape or a
// control character in a decoded segment.
std::optional<std::vector<std::string>> PathSegments(std::string_view raw_path);

// "a=1&b=x+y" -> {a: "1", b: "x y"}; the last of a repeated key wins. nullopt
// for a malformed escape.
std::optional<std::map<std::string, std::string>> ParseQuery(std::string_view q);

// Header names lower-cased; repeated headers joined with ", ".
void CopyHeaders(const boost::beast::http::request_header<>& req, HttpRequest* out);

// Fills out (method, target, headers, body, path, query) and the decoded path
// segments from req; false (with *error) for a target that does not decode.
bool FromBeast(boost::beast::http::request<boost::beast::http::string_body>&& req, HttpRequest* out,
               std::vector<std::string>* segments, std::string* error);

// What the server makes of the first request in some bytes.
enum class ParseOutcome {
  kOk,               // *out holds the request (the server routes it)
  kIncomplete,       // the bytes end inside the request (the server waits; at EOF: 400)
  kBodyTooLarge,     // 413
  kHeadersTooLarge,  // 431
  kMalformed,        // not HTTP/1.x: 400
  kBadTarget,        // parsed, but the target does not decode: 400
};

struct ParsedRequest {
  HttpRequest request;
  std::vector<std::string> segments;  // decoded path segments (kOk)
  std::string error;                  // why, for every outcome but kOk
  size_t consumed = 0;                // bytes of the input the parser took
  unsigned version = 11;
  bool keep_alive = false;
  bool head = false;  // a HEAD request
};

// Parses the first request in bytes as a server connection would read it with
// max_header_bytes and max_body_bytes.
ParseOutcome ParseRequest(std::string_view bytes, size_t max_header_bytes, size_t max_body_bytes, ParsedRequest* out);

}  // namespace cityloop::console::http_parse
