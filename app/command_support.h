// What the subcommands (commands.cc, replay_commands.cc) share.
#pragma once

#include <memory>
#include <string>

#include "core/city.h"

namespace cityloop::app {

inline constexpr int kExitOk = 0;
inline constexpr int kExitRuntime = 1;  // diff: the runs differ
inline constexpr int kExitUsage = 2;

// Loads and validates a config and builds its city model, or prints every
// error (file:line: key: message) and returns nullptr.
std::shared_ptr<const CityModel> LoadCity(const std::string& path);

}  // namespace cityloop::app
