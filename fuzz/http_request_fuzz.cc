// The console's HTTP request parsing (console/http_parse.h, what HttpServer
// runs on every request): Beast's parser with the server's limits, then the
// target decoded into path, segments and query. The input is the bytes a
// client sends on one connection; up to 8 pipelined requests are parsed, with
// the API's limits (16 KiB of headers, 64 KiB of body) and with tiny ones
// (256 and 64 bytes). The URL helpers also get the raw input.
#include <string>

#include "console/http_parse.h"
#include "fuzz/fuzz_support.h"

namespace {

using namespace cityloop;
using namespace cityloop::console;
using fuzz::Check;

void ParseConnection(std::string_view bytes, size_t max_header, size_t max_body) {
  for (int i = 0; i < 8 && !bytes.empty(); ++i) {
    http_parse::ParsedRequest p;
    const http_parse::ParseOutcome o = http_parse::ParseRequest(bytes, max_header, max_body, &p);
    Check(p.consumed <= bytes.size(), "consumed more than given");
    if (o != http_parse::ParseOutcome::kOk) {
      Check(!p.error.empty(), "a failed parse without an error");
      return;
    }
    const HttpRequest& r = p.request;
    Check(!r.method.empty() && !r.target.empty(), "a request without method or target");
    Check(r.body.size() <= max_body, "a body over the limit");
    Check(!p.segments.empty(), "a request path without segments");
    for (const std::string& s : p.segments) {
      for (char c : s) Check(static_cast<unsigned char>(c) >= 0x20 && c != 0x7f, "a control character in a segment");
    }
    for (const auto& [name, value] : r.headers) {
      for (char c : name) Check(!(c >= 'A' && c <= 'Z'), "a header name not lower-cased: " + name);
    }
    (void)r.header("content-type");
    if (!p.keep_alive || p.consumed == 0) return;
    bytes.remove_prefix(p.consumed);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input = fuzz::AsText(data, size);
  ParseConnection(input, 16 * 1024, 64 * 1024);
  ParseConnection(input, 256, 64);

  for (bool plus : {false, true}) {
    if (auto d = http_parse::PercentDecode(input, plus)) {
      Check(d->size() <= input.size(), "percent-decoding made the text longer");
      if (input.find_first_of(plus ? "%+" : "%") == std::string_view::npos) Check(*d == input, "decoding changed plain text");
    }
  }
  (void)http_parse::PathSegments(input);
  if (auto q = http_parse::ParseQuery(input)) {
    Check(q->size() <= input.size(), "more query keys than bytes");
  }
  return 0;
}
