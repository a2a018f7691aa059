// What the benchmarks share: failing a setup step, walking the flags, and the
// process's resident memory.
#pragma once

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

namespace cityloop::bench {

// Prints "<bench>: <what>" and exits with status 2 (a setup failure).
[[noreturn]] inline void Fail(const char* bench, const std::string& what) {
  std::fprintf(stderr, "%s: %s\n", bench, what.c_str());
  std::exit(2);
}

// Calls on(flag, value) for each argument; value() takes the next one (and
// fails when there is none). on returns false for a flag it does not know.
template <typename On>
void ForEachFlag(const char* bench, int argc, char** argv, On on) {
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) Fail(bench, "missing value for " + flag);
      return argv[++i];
    };
    if (!on(flag, value)) Fail(bench, "unknown flag " + flag + " (see the header of bench/" + bench + ".cc)");
  }
}

inline double RssMiB() {
  std::ifstream statm("/proc/self/statm");
  long pages = 0, resident = 0;
  statm >> pages >> resident;
  return static_cast<double>(resident) * static_cast<double>(sysconf(_SC_PAGESIZE)) / (1024.0 * 1024.0);
}

}  // namespace cityloop::bench
