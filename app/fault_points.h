// Named crash points for the crash tests: CITYLOOP_FAULT_POINT="name:N" makes
// the process SIGKILL itself the Nth time it reaches point `name`. Unset (the
// normal case) costs one branch per point.
#pragma once

#include <string_view>

namespace cityloop::app {

// Points: after_poll, before_write, after_write, after_commit, after_publish.
void FaultPoint(std::string_view name);

}  // namespace cityloop::app
