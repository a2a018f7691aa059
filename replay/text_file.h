// Whole-file reads and crash-safe writes of the replay module's small files
// (manifests, segment indexes, run outputs).
#pragma once

#include <string>

#include "core/status.h"

namespace cityloop::replay {

// Writes text to path through a temporary file and a rename: a reader sees
// the old file or the new one, never half of one.
Status WriteTextFile(const std::string& path, const std::string& text);

// The whole file; NotFound when it cannot be opened.
Result<std::string> ReadTextFile(const std::string& path);

}  // namespace cityloop::replay
