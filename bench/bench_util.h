// What the benchmarks share: failing a setup step, walking the flags, a
// scratch directory, and the process's resident memory.
#pragma once

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "core/geo.h"
#include "core/status.h"

namespace cityloop::bench {

// Prints "<bench>: <what>" and exits with status 2 (a setup failure).
[[noreturn]] inline void Fail(const char* bench, const std::string& what) {
  std::fprintf(stderr, "%s: %s\n", bench, what.c_str());
  std::exit(2);
}

// A setup step that must succeed: its value, or Fail("<what>: <error>").
template <typename T>
T Must(const char* bench, Result<T> r, const std::string& what) {
  if (!r.ok()) Fail(bench, what + ": " + r.status().ToString());
  return std::move(r).value();
}
inline void Must(const char* bench, const Status& s, const std::string& what) {
  if (!s.ok()) Fail(bench, what + ": " + s.ToString());
}

// A fresh directory under $TMPDIR, removed with everything in it when the object dies.
class TempDir {
 public:
  TempDir(const char* bench, const std::string& tag) {
    std::string templ =
        (std::filesystem::temp_directory_path() / ("cityloop-" + tag + "-XXXXXX")).string();
    std::vector<char> buf(templ.begin(), templ.end());
    buf.push_back('\0');
    if (!::mkdtemp(buf.data())) Fail(bench, "mkdtemp " + templ);
    path_ = buf.data();
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

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

// A city.sensors reading of gas device `device` at p.
inline std::string GasReading(const std::string& device, int64_t ts_ms, double value, LatLon p) {
  char buf[256];
  std::snprintf(buf, sizeof buf,
                "{\"device_id\":\"%s\",\"kind\":\"gas_ppm\",\"ts\":%lld,\"value\":%.1f,\"unit\":\"ppm\","
                "\"lat\":%.7f,\"lon\":%.7f}",
                device.c_str(), static_cast<long long>(ts_ms), value, p.lat, p.lon);
  return buf;
}

inline double RssMiB() {
  std::ifstream statm("/proc/self/statm");
  long pages = 0, resident = 0;
  statm >> pages >> resident;
  return static_cast<double>(resident) * static_cast<double>(sysconf(_SC_PAGESIZE)) / (1024.0 * 1024.0);
}

}  // namespace cityloop::bench
