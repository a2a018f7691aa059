#include "app/fault_points.h"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <string>

namespace cityloop::app {
namespace {
struct Armed {
  std::string name;
  long remaining = 0;
};
const Armed* Parse() {
  const char* spec = std::getenv("CITYLOOP_FAULT_POINT");
  if (!spec || !*spec) return nullptr;
  std::string s(spec);
  auto colon = s.find(':');
  auto* a = new Armed{s.substr(0, colon), colon == std::string::npos ? 1 : std::atol(s.c_str() + colon + 1)};
  return a;
}
}  // namespace

void FaultPoint(std::string_view name) {
  static const Armed* armed = Parse();
  static std::atomic<long> hits{0};
  if (!armed || armed->name != name) return;
  if (hits.fetch_add(1) + 1 >= armed->remaining) kill(getpid(), SIGKILL);
}

}  // namespace cityloop::app
