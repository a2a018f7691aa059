// The static web console: GET / (index.html) and GET /{file} from one
// directory (api.web_root). Only plain file names ([A-Za-z0-9._-], not
// starting with '.') resolve, to regular files inside the root (symlinks
// leading out of it are refused): no traversal. Responses carry a content
// type by extension, an ETag (If-None-Match gives 304) and Cache-Control:
// no-cache, so browsers revalidate instead of running a stale console.
#pragma once

#include <map>
#include <string>

#include "console/http_server.h"

namespace cityloop::console {

// The console/web directory of the source tree this binary was built from.
std::string DefaultWebRoot();

// Content type for a file name by its extension (application/octet-stream if unknown).
std::string ContentTypeFor(const std::string& file_name);

// Adds "GET /" and "GET /{file}" serving files from root.
void AddWebRoutes(std::map<std::string, Handler>& routes, const std::string& root);

}  // namespace cityloop::console
