#include "console/web_files.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "console/auth.h"

namespace cityloop::console {

namespace fs = std::filesystem;

namespace {

constexpr size_t kMaxFileBytes = 16u << 20;

bool IsFileName(const std::string& name) {
  if (name.empty() || name.size() > 128 || name.front() == '.') return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
           c == '-';
  });
}

HttpResponse ServeFile(const std::string& root, const std::string& name, const HttpRequest& req) {
  if (!IsFileName(name)) return JsonError(404, "not_found", "no file '" + name + "'");
  std::error_code ec;
  const fs::path base = fs::weakly_canonical(fs::path(root), ec);
  if (ec) return JsonError(404, "not_found", "the web console is not installed (api.web_root)");
  const fs::path file = fs::weakly_canonical(base / name, ec);
  // Inside the root, also after symlinks.
  if (ec || file.parent_path() != base) return JsonError(404, "not_found", "no file '" + name + "'");
  if (!fs::is_regular_file(file, ec)) return JsonError(404, "not_found", "no file '" + name + "'");
  const auto size = fs::file_size(file, ec);
  if (ec || size > kMaxFileBytes) return JsonError(404, "not_found", "no file '" + name + "'");
  std::ifstream in(file, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  if (!in && !in.eof()) return JsonError(500, "internal", "cannot read '" + name + "'");
  HttpResponse r;
  r.body = ss.str();
  r.content_type = ContentTypeFor(name);
  const std::string etag = "\"" + Sha256Hex(r.body).substr(0, 32) + "\"";
  r.headers.emplace_back("ETag", etag);
  r.headers.emplace_back("Cache-Control", "no-cache");
  auto inm = req.headers.find("if-none-match");
  if (inm != req.headers.end() && (inm->second == etag || inm->second == "W/" + etag || inm->second == "*")) {
    r.status = 304;
    r.body.clear();
  }
  return r;
}

}  // namespace

std::string DefaultWebRoot() { return (fs::path(__FILE__).parent_path() / "web").string(); }

std::string ContentTypeFor(const std::string& file_name) {
  static const std::map<std::string, std::string> kTypes = {
      {".html", "text/html; charset=utf-8"},
      {".htm", "text/html; charset=utf-8"},
      {".js", "text/javascript; charset=utf-8"},
      {".mjs", "text/javascript; charset=utf-8"},
      {".css", "text/css; charset=utf-8"},
      {".json", "application/json"},
      {".map", "application/json"},
      {".webmanifest", "application/manifest+json"},
      {".svg", "image/svg+xml"},
      {".png", "image/png"},
      {".jpg", "image/jpeg"},
      {".jpeg", "image/jpeg"},
      {".gif", "image/gif"},
      {".webp", "image/webp"},
      {".ico", "image/x-icon"},
      {".woff", "font/woff"},
      {".woff2", "font/woff2"},
      {".txt", "text/plain; charset=utf-8"},
      {".yaml", "text/yaml; charset=utf-8"},
  };
  const size_t dot = file_name.rfind('.');
  if (dot == std::string::npos) return "application/octet-stream";
  std::string ext = file_name.substr(dot);
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  auto it = kTypes.find(ext);
  return it == kTypes.end() ? "application/octet-stream" : it->second;
}

void AddWebRoutes(std::map<std::string, Handler>& routes, const std::string& root) {
  routes["GET /"] = [root](const HttpRequest& req) { return ServeFile(root, "index.html", req); };
  routes["GET /{file}"] = [root](const HttpRequest& req) { return ServeFile(root, req.params.at("file"), req); };
}

}  // namespace cityloop::console
