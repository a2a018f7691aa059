#include "tests/support/test_support.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace cityloop::testing {

TempDir::TempDir() {
  const char* base = std::getenv("TMPDIR");
  std::string tmpl = std::string(base && *base ? base : "/tmp") + "/cityloop-test-XXXXXX";
  if (!mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
  path_ = tmpl;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

bool WaitFor(const std::function<bool()>& cond, std::chrono::milliseconds deadline) {
  const auto end = std::chrono::steady_clock::now() + deadline;
  auto pause = std::chrono::milliseconds(5);
  while (true) {
    if (cond()) return true;
    if (std::chrono::steady_clock::now() > end) return false;
    std::this_thread::sleep_for(pause);  // polling interval, not a wait for an effect
    pause = std::min(pause * 2, std::chrono::milliseconds(200));
  }
}

std::string ProjectRoot() {
  const char* root = std::getenv("CITYLOOP_ROOT");
  return root && *root ? root : CITYLOOP_SOURCE_DIR;
}

std::string CityloopBinary() {
  const char* bin = std::getenv("CITYLOOP_BIN");
  return bin && *bin ? bin : CITYLOOP_BINARY_PATH;
}

std::string ExampleConfigPath() { return ProjectRoot() + "/deploy/cityloop.example.yaml"; }

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void WriteFile(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
}

ChildProcess::ChildProcess(const std::vector<std::string>& argv, const std::string& log_path,
                           const std::vector<std::string>& env, bool pipe_stdin)
    : log_path_(log_path) {
  int in[2] = {-1, -1};
  if (pipe_stdin && pipe2(in, O_CLOEXEC) != 0) in[0] = in[1] = -1;
  pid_ = fork();
  if (pid_ == 0) {
    setpgid(0, 0);
    if (in[0] >= 0) dup2(in[0], 0);
    for (const auto& e : env) putenv(const_cast<char*>(e.c_str()));
    int fd = open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
      dup2(fd, 1);
      dup2(fd, 2);
    }
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execv(args[0], args.data());
    _exit(127);
  }
  if (in[0] >= 0) close(in[0]);
  stdin_fd_ = in[1];
}

ChildProcess::~ChildProcess() {
  if (Running()) {
    Kill(SIGKILL);
    Wait(std::chrono::seconds(10));
  }
  if (stdin_fd_ >= 0) close(stdin_fd_);
}

bool ChildProcess::WriteStdin(const std::string& text) {
  if (stdin_fd_ < 0) return false;
  static const bool kNoSigpipe = [] {  // a dead child fails the write instead of killing the test
    signal(SIGPIPE, SIG_IGN);
    return true;
  }();
  (void)kNoSigpipe;
  for (size_t done = 0; done < text.size();) {
    const ssize_t n = write(stdin_fd_, text.data() + done, text.size() - done);
    if (n <= 0) return false;
    done += static_cast<size_t>(n);
  }
  return true;
}

bool ChildProcess::Running() {
  if (exited_ || pid_ <= 0) return false;
  int st;
  pid_t r = waitpid(pid_, &st, WNOHANG);
  if (r == pid_) {
    exited_ = true;
    status_ = st;
    return false;
  }
  return true;
}

void ChildProcess::Kill(int sig) {
  if (pid_ > 0 && !exited_) kill(pid_, sig);
}

int ChildProcess::Wait(std::chrono::milliseconds deadline) {
  if (!WaitFor([&] { return !Running(); }, deadline)) return -1;
  if (WIFEXITED(status_)) return WEXITSTATUS(status_);
  if (WIFSIGNALED(status_)) return 128 + WTERMSIG(status_);
  return -1;
}

int RunCommand(const std::vector<std::string>& argv, std::string* output) {
  std::string cmd;
  for (const auto& a : argv) {
    cmd += "'";
    for (char c : a) cmd += c == '\'' ? std::string("'\\''") : std::string(1, c);
    cmd += "' ";
  }
  cmd += "2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return -1;
  char buf[4096];
  size_t n;
  std::string out;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  int st = pclose(p);
  if (output) *output = out;
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

}  // namespace cityloop::testing
