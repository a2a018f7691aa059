// What the replay-log fuzz targets share: a scratch directory per process
// (in /dev/shm when there is one: the targets write a log per input), and
// reading a whole log the way `cityloop replay` does.
#pragma once

#include <signal.h>
#include <unistd.h>

#include <cerrno>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz/fuzz_support.h"
#include "replay/replay_log.h"

namespace cityloop::fuzz {

// The topic and partition of the stream the targets write.
inline constexpr const char* kTopic = "city.sensors";

// A directory of this process's own, <base>/cityloop-fuzz-<pid>, emptied per
// input. Removed at exit when the process exits normally; libFuzzer ends
// with _Exit, so each start also removes the directories of processes that
// are gone.
inline const std::string& ScratchDir() {
  static const std::string dir = [] {
    namespace fs = std::filesystem;
    std::error_code ec;
    const char* tmp = std::getenv("TMPDIR");
    const std::string base = fs::is_directory("/dev/shm", ec) ? "/dev/shm" : (tmp && *tmp ? tmp : "/tmp");
    const std::string prefix = "cityloop-fuzz-";
    for (const auto& e : fs::directory_iterator(base, ec)) {
      const std::string name = e.path().filename().string();
      if (name.rfind(prefix, 0) != 0) continue;
      const std::string pid = name.substr(prefix.size());
      if (pid.empty() || pid.find_first_not_of("0123456789") != std::string::npos || pid.size() > 9) continue;
      if (::kill(static_cast<pid_t>(std::stol(pid)), 0) != 0 && errno == ESRCH) fs::remove_all(e.path(), ec);
    }
    static std::string made = base + "/" + prefix + std::to_string(::getpid());
    fs::remove_all(made, ec);
    fs::create_directories(made, ec);
    if (ec) Fail("cannot create the scratch directory " + made + ": " + ec.message());
    std::atexit([] {
      std::error_code ignored;
      std::filesystem::remove_all(made, ignored);
    });
    return made;
  }();
  return dir;
}

// ScratchDir()/log, empty.
inline std::string FreshLogDir() {
  namespace fs = std::filesystem;
  const std::string dir = ScratchDir() + "/log";
  std::error_code ec;
  fs::remove_all(dir, ec);
  fs::create_directories(dir + "/" + kTopic + "/0", ec);
  if (ec) Fail("cannot create " + dir + ": " + ec.message());
  return dir;
}

inline void WriteFile(const std::string& path, std::string_view bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  out.flush();
  if (!out) Fail("cannot write " + path);
}

inline constexpr std::string_view kManifest =
    R"({"format": "cityloop-replay-log", "version": 1, "writer": "record"})";

struct ReadSummary {
  bool opened = false;
  std::vector<replay::LogRecord> records;
  std::vector<replay::LogProblem> problems;
};

// Reads the log at dir to its end. A damaged log must open (only a missing or
// foreign manifest may refuse) and every record must come from a stream of
// the log and within the options' time range.
inline ReadSummary ReadLog(const std::string& dir, const replay::LogReadOptions& options) {
  ReadSummary out;
  auto reader = replay::LogReader::Open(dir, options);
  if (!reader.ok()) return out;
  out.opened = true;
  (void)(*reader)->info();
  while (replay::LogRecord* r = (*reader)->Next()) {
    Check(r->message.topic == kTopic || r->message.topic == replay::kClockStream,
          "a record of topic '" + r->message.topic + "'");
    Check(r->message.partition == 0, "a record of partition " + std::to_string(r->message.partition));
    if (r->kind == replay::RecordKind::kMessage) {
      Check(r->message.timestamp_ms >= options.from_ms && r->message.timestamp_ms < options.to_ms,
            "a record at " + std::to_string(r->message.timestamp_ms) + " outside the time range");
    }
    Check(out.records.size() < 1000000, "more records than the log can hold");
    out.records.push_back(*r);
  }
  out.problems = (*reader)->problems();
  for (const replay::LogProblem& p : out.problems) Check(!p.ToString().empty(), "an empty problem");
  (void)(*reader)->bytes_read();
  (void)(*reader)->out_of_order();
  return out;
}

}  // namespace cityloop::fuzz
