// Process-wide logging set-up: spdlog to stderr, as text or as JSON lines
// (--log-format json). Call once from main() before other threads start.
#pragma once

#include <string>

#include "core/status.h"

namespace cityloop {

// format: "text" | "json"; level: trace, debug, info, warn, error.
Status InitLogging(const std::string& format, const std::string& level);

}  // namespace cityloop
