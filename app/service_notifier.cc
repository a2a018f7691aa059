#include "app/service_notifier.h"

#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <optional>

namespace cityloop::app {

int64_t SteadyNowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

namespace {

std::optional<int64_t> ParsePositive(const char* text) {
  if (!text || !*text) return std::nullopt;
  char* end = nullptr;
  errno = 0;
  const long long v = std::strtoll(text, &end, 10);
  if (errno != 0 || !end || *end != '\0' || v <= 0) return std::nullopt;
  return v;
}

int64_t MonotonicUsec() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000 + ts.tv_nsec / 1000;
}

}  // namespace

NotifyEnvironment NotifyEnvironmentFromEnv(pid_t self) {
  NotifyEnvironment env;
  if (const char* s = std::getenv("NOTIFY_SOCKET")) env.socket = s;
  if (auto usec = ParsePositive(std::getenv("WATCHDOG_USEC"))) {
    const auto pid = ParsePositive(std::getenv("WATCHDOG_PID"));
    if (!pid || *pid == self) env.watchdog_usec = *usec;
  }
  return env;
}

ServiceNotifier::ServiceNotifier(NotifyEnvironment env) : env_(std::move(env)) {}

ServiceNotifier::~ServiceNotifier() {
  if (fd_ >= 0) close(fd_);
}

Status ServiceNotifier::Open() {
  if (fd_ >= 0) return Status::Ok();
  fd_ = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd_ < 0) return Status::IoError(std::string("sd_notify: socket: ") + std::strerror(errno));
  return Status::Ok();
}

Status ServiceNotifier::Notify(std::string_view state) {
  if (!enabled()) return Status::Ok();
  const std::string& path = env_.socket;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path[0] != '/' && path[0] != '@') {
    // systemd >= 254 also names vsock: addresses; cityloop speaks AF_UNIX only.
    return Status::InvalidArgument("sd_notify: unsupported NOTIFY_SOCKET '" + path + "'");
  }
  if (path.size() >= sizeof addr.sun_path) return Status::InvalidArgument("sd_notify: NOTIFY_SOCKET path too long");
  std::memcpy(addr.sun_path, path.data(), path.size());
  if (path[0] == '@') addr.sun_path[0] = '\0';  // abstract namespace: no terminating NUL counts
  const auto len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size() + (path[0] == '@' ? 0 : 1));
  CL_RETURN_IF_ERROR(Open());
  const ssize_t n =
      sendto(fd_, state.data(), state.size(), MSG_NOSIGNAL, reinterpret_cast<const sockaddr*>(&addr), len);
  if (n < 0) return Status::Unavailable("sd_notify to " + path + ": " + std::strerror(errno));
  return Status::Ok();
}

ServiceLifecycle::ServiceLifecycle(ServiceNotifier* notifier, LifecycleHooks hooks, LifecycleFlags flags,
                                   int64_t status_every_ms)
    : notifier_(notifier), hooks_(std::move(hooks)), flags_(flags), status_every_ms_(status_every_ms) {
  watchdog_half_ms_ = notifier_->watchdog_usec() / 2000;
  if (notifier_->watchdog_usec() > 0 && watchdog_half_ms_ == 0) watchdog_half_ms_ = 1;
}

ServiceLifecycle::~ServiceLifecycle() { StopThread(); }

void ServiceLifecycle::Send(const std::string& state) {
  Status st = notifier_->Notify(state);
  if (!st.ok()) spdlog::warn("{}", st.message());
}

void ServiceLifecycle::Tick(int64_t now_ms) {
  if (stopping_sent_) return;
  if (flags_.stop && flags_.stop->load()) {
    stopping_sent_ = true;
    Send("STOPPING=1\nSTATUS=stopping: finishing the batch, draining the outbox");
    return;
  }
  // SIGHUP: always handed on to the engine; told to systemd once it knows we are up.
  if (flags_.reload_request && flags_.reload_request->exchange(false) && flags_.engine_reload) {
    if (!reloading_) {
      reload_base_ = hooks_.reloads_done ? hooks_.reloads_done() : 0;
      reloading_ = ready_sent_ && hooks_.reloads_done != nullptr;
      if (reloading_) {
        Send("RELOADING=1\nMONOTONIC_USEC=" + std::to_string(MonotonicUsec()) + "\nSTATUS=reloading the rules");
      }
    }
    flags_.engine_reload->store(true);
  }
  if (reloading_ && hooks_.reloads_done() > reload_base_) {
    reloading_ = false;
    last_status_ms_ = now_ms;
    Send("READY=1\nSTATUS=" + (hooks_.status ? hooks_.status() : std::string("reloaded")));
  }
  if (!ready_sent_) {
    if (!hooks_.ready || !hooks_.ready()) return;
    ready_sent_ = true;
    last_status_ms_ = now_ms;
    Send("READY=1\nSTATUS=" + (hooks_.status ? hooks_.status() : std::string("ready")));
  }
  if (watchdog_half_ms_ > 0 && now_ms - last_ping_ms_ >= watchdog_half_ms_) {
    const int64_t beat = hooks_.heartbeat_ms ? hooks_.heartbeat_ms() : 0;
    if (beat > 0 && now_ms - beat < watchdog_half_ms_) {
      last_ping_ms_ = now_ms;
      ++pings_;
      stalled_logged_ = false;
      Send("WATCHDOG=1");
    } else if (!stalled_logged_) {
      stalled_logged_ = true;
      spdlog::warn("watchdog: the engine loop has not turned for {} ms; withholding the ping",
                   beat > 0 ? now_ms - beat : -1);
    }
  }
  if (hooks_.status && status_every_ms_ > 0 && now_ms - last_status_ms_ >= status_every_ms_) {
    last_status_ms_ = now_ms;
    Send("STATUS=" + hooks_.status());
  }
}

void ServiceLifecycle::Start() {
  if (!notifier_->enabled()) return;
  // Often enough for the watchdog's half period and to hand on a reload promptly.
  int64_t period = 50;
  if (watchdog_half_ms_ > 0) period = std::max<int64_t>(1, std::min<int64_t>(period, watchdog_half_ms_ / 4));
  thread_ = std::thread([this, period] {
    while (!finish_.load()) {
      Tick(SteadyNowMs());
      std::this_thread::sleep_for(std::chrono::milliseconds(period));  // the lifecycle's tick
    }
  });
}

void ServiceLifecycle::StopThread() {
  finish_.store(true);
  if (thread_.joinable()) thread_.join();
}

void ServiceLifecycle::Finish(const Status& result) {
  StopThread();
  std::string state;
  if (!stopping_sent_) state = "STOPPING=1\n";
  stopping_sent_ = true;
  state += result.ok() ? "STATUS=stopped" : "STATUS=engine stopped: " + result.message();
  Send(state);
}

}  // namespace cityloop::app
