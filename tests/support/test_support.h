// Helpers shared by the test suites: scratch directories, waiting on a
// condition (never on a fixed sleep), the example config, child processes.
#pragma once

#include <chrono>
#include <functional>
#include <string>
#include <vector>

namespace cityloop::testing {

// A fresh directory under $TMPDIR, removed when the object dies.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// Polls cond until it holds or the deadline passes; returns whether it held.
// The deadline only bounds a hung test: a passing test never waits it out.
bool WaitFor(const std::function<bool()>& cond, std::chrono::milliseconds deadline = std::chrono::seconds(60));

std::string ProjectRoot();         // $CITYLOOP_ROOT, else the source dir baked in at build time
std::string CityloopBinary();      // $CITYLOOP_BIN, else the cityloop executable of this build
std::string ExampleConfigPath();   // deploy/cityloop.example.yaml
std::string ReadFile(const std::string& path);
void WriteFile(const std::string& path, const std::string& text);

// A child process with stdout+stderr to a log file.
class ChildProcess {
 public:
  // env: extra "NAME=value" entries for the child. pipe_stdin: the child's
  // stdin is a pipe fed by WriteStdin (closed when this object dies).
  ChildProcess(const std::vector<std::string>& argv, const std::string& log_path,
               const std::vector<std::string>& env = {}, bool pipe_stdin = false);
  ~ChildProcess();  // SIGKILLs if still running
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;
  int pid() const { return pid_; }
  bool Running();
  void Kill(int signal);
  // Waits for exit; returns the exit code, or 128+signal. -1 on timeout.
  int Wait(std::chrono::milliseconds deadline = std::chrono::seconds(60));
  const std::string& log_path() const { return log_path_; }
  // Writes text to the child's stdin (pipe_stdin); false if it cannot.
  bool WriteStdin(const std::string& text);

 private:
  int pid_ = -1;
  int stdin_fd_ = -1;
  int status_ = -1;
  bool exited_ = false;
  std::string log_path_;
};

// Runs argv to completion, capturing stdout+stderr; returns the exit code.
int RunCommand(const std::vector<std::string>& argv, std::string* output);

}  // namespace cityloop::testing
