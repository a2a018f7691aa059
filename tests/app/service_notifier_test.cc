// systemd integration: the sd_notify datagrams (path and abstract sockets,
// nothing without NOTIFY_SOCKET, WATCHDOG_PID), the lifecycle's decisions
// stepped by hand (READY only once ready, WATCHDOG only while the engine loop
// turns, RELOADING then READY around a reload, STOPPING), and a real
// `cityloop run --embedded-kafka` under a fake systemd: a unix datagram
// socket in a temp dir that receives READY=1 once /readyz says ready,
// watchdog pings, RELOADING=1/READY=1 on SIGHUP and STOPPING=1 on SIGTERM.
#include "app/service_notifier.h"

#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <string>
#include <vector>

#include "tests/support/engine_process.h"
#include "tests/support/test_support.h"

namespace cityloop {
namespace {

using app::LifecycleFlags;
using app::LifecycleHooks;
using app::NotifyEnvironment;
using app::ServiceLifecycle;
using app::ServiceNotifier;

// What systemd's end looks like: a bound unix datagram socket.
class FakeSystemd {
 public:
  // name: a path, or "@name" for the abstract namespace.
  explicit FakeSystemd(const std::string& name) : name_(name) {
    fd_ = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, name.data(), name.size());
    if (name[0] == '@') addr.sun_path[0] = '\0';
    const auto len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + name.size() + (name[0] == '@' ? 0 : 1));
    bound_ = fd_ >= 0 && bind(fd_, reinterpret_cast<const sockaddr*>(&addr), len) == 0;
  }
  ~FakeSystemd() {
    if (fd_ >= 0) close(fd_);
    if (name_[0] == '/') unlink(name_.c_str());
  }
  bool bound() const { return bound_; }
  const std::string& name() const { return name_; }
  // The next datagram, or "" when none arrives within timeout_ms (0: only one already there).
  std::string Next(int timeout_ms = 0) {
    pollfd p{fd_, POLLIN, 0};
    if (poll(&p, 1, timeout_ms) <= 0) return "";
    char buf[4096];
    const ssize_t n = recv(fd_, buf, sizeof buf, 0);
    return n > 0 ? std::string(buf, static_cast<size_t>(n)) : "";
  }
  // Every datagram already received.
  std::vector<std::string> Drain() {
    std::vector<std::string> out;
    for (std::string m = Next(); !m.empty(); m = Next()) out.push_back(m);
    return out;
  }
  // Reads until a datagram starting with `prefix` arrives (returned) or the deadline passes ("").
  std::string WaitFor(const std::string& prefix, int64_t deadline_ms, std::vector<std::string>* seen = nullptr) {
    const int64_t end = testing::SteadyMs() + deadline_ms;
    for (int64_t left = deadline_ms; left > 0; left = end - testing::SteadyMs()) {
      const std::string m = Next(static_cast<int>(left));
      if (m.empty()) continue;
      if (seen) seen->push_back(m);
      if (m.rfind(prefix, 0) == 0) return m;
    }
    return "";
  }

 private:
  std::string name_;
  int fd_ = -1;
  bool bound_ = false;
};

// Sets an environment variable for one test, restoring it afterwards.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = getenv(name)) old_ = old, had_ = true;
    if (value)
      setenv(name, value, 1);
    else
      unsetenv(name);
  }
  ~ScopedEnv() {
    if (had_)
      setenv(name_.c_str(), old_.c_str(), 1);
    else
      unsetenv(name_.c_str());
  }

 private:
  std::string name_, old_;
  bool had_ = false;
};

TEST(ServiceNotifier, IsANoOpWithoutNotifySocket) {
  ScopedEnv socket("NOTIFY_SOCKET", nullptr);
  ScopedEnv watchdog("WATCHDOG_USEC", "2000000");
  ServiceNotifier n(app::NotifyEnvironmentFromEnv(getpid()));
  EXPECT_FALSE(n.enabled());
  EXPECT_TRUE(n.Notify("READY=1").ok());
}

TEST(ServiceNotifier, WatchdogPidOfAnotherProcessTurnsTheWatchdogOff) {
  ScopedEnv socket("NOTIFY_SOCKET", "/run/systemd/notify");
  ScopedEnv usec("WATCHDOG_USEC", "2000000");
  {
    ScopedEnv pid("WATCHDOG_PID", nullptr);
    EXPECT_EQ(app::NotifyEnvironmentFromEnv(getpid()).watchdog_usec, 2000000);
  }
  {
    ScopedEnv pid("WATCHDOG_PID", std::to_string(getpid()).c_str());
    EXPECT_EQ(app::NotifyEnvironmentFromEnv(getpid()).watchdog_usec, 2000000);
  }
  {
    ScopedEnv pid("WATCHDOG_PID", std::to_string(getpid() + 1).c_str());
    EXPECT_EQ(app::NotifyEnvironmentFromEnv(getpid()).watchdog_usec, 0);
  }
  ScopedEnv bad("WATCHDOG_USEC", "soon");
  EXPECT_EQ(app::NotifyEnvironmentFromEnv(getpid()).watchdog_usec, 0);
  EXPECT_EQ(app::NotifyEnvironmentFromEnv(getpid()).socket, "/run/systemd/notify");
}

TEST(ServiceNotifier, SendsToAPathAndToAnAbstractSocket) {
  testing::TempDir dir;
  FakeSystemd path(dir.file("notify"));
  FakeSystemd abstract("@cityloop-test-" + std::to_string(getpid()));
  ASSERT_TRUE(path.bound());
  ASSERT_TRUE(abstract.bound());
  for (FakeSystemd* s : {&path, &abstract}) {
    ServiceNotifier n(NotifyEnvironment{s->name(), 0});
    ASSERT_TRUE(n.enabled());
    ASSERT_TRUE(n.Notify("READY=1\nSTATUS=up").ok());
    EXPECT_EQ(s->Next(1000), "READY=1\nSTATUS=up") << s->name();
  }
  ServiceNotifier nobody(NotifyEnvironment{dir.file("nobody-listens"), 0});
  EXPECT_FALSE(nobody.Notify("READY=1").ok());
  ServiceNotifier vsock(NotifyEnvironment{"vsock:2:1234", 0});
  EXPECT_FALSE(vsock.Notify("READY=1").ok());
}

// The lifecycle stepped by hand: every decision at a given instant, no thread.
class Lifecycle : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(systemd_.bound()); }
  std::unique_ptr<ServiceLifecycle> Make(int64_t watchdog_usec) {
    notifier_ = std::make_unique<ServiceNotifier>(NotifyEnvironment{systemd_.name(), watchdog_usec});
    LifecycleHooks hooks;
    hooks.ready = [this] { return ready_; };
    hooks.heartbeat_ms = [this] { return heartbeat_; };
    hooks.status = [] { return std::string("lag 0"); };
    hooks.reloads_done = [this] { return reloads_; };
    return std::make_unique<ServiceLifecycle>(notifier_.get(), hooks, LifecycleFlags{&stop_, &hup_, &engine_reload_},
                                              /*status_every_ms=*/1000);
  }

  testing::TempDir dir_;
  FakeSystemd systemd_{dir_.file("notify")};
  std::unique_ptr<ServiceNotifier> notifier_;
  bool ready_ = false;
  int64_t heartbeat_ = 0;
  int64_t reloads_ = 0;
  std::atomic<bool> stop_{false}, hup_{false}, engine_reload_{false};
};

TEST_F(Lifecycle, ReadyOnlyOnceReadyAndPingsOnlyWhileTheLoopTurns) {
  auto l = Make(/*watchdog_usec=*/200000);  // ping every 100 ms
  heartbeat_ = 1000;
  l->Tick(1000);
  EXPECT_TRUE(systemd_.Drain().empty()) << "nothing before the engine is ready";
  ready_ = true;
  l->Tick(1010);
  EXPECT_EQ(systemd_.Drain(), (std::vector<std::string>{"READY=1\nSTATUS=lag 0", "WATCHDOG=1"}));
  l->Tick(1050);
  EXPECT_TRUE(systemd_.Drain().empty()) << "pinged again before half the interval";
  heartbeat_ = 1100;
  l->Tick(1110);
  EXPECT_EQ(systemd_.Drain(), std::vector<std::string>{"WATCHDOG=1"});
  // The loop stalls at 1100: no ping once its heartbeat is half an interval old.
  l->Tick(1210);
  l->Tick(1400);
  EXPECT_TRUE(systemd_.Drain().empty()) << "pinged for a stalled loop";
  heartbeat_ = 1450;
  l->Tick(1460);
  EXPECT_EQ(systemd_.Drain(), std::vector<std::string>{"WATCHDOG=1"});
  EXPECT_EQ(l->watchdog_pings(), 3);
  // STATUS every second.
  heartbeat_ = 2050;
  l->Tick(2060);
  EXPECT_EQ(systemd_.Drain(), (std::vector<std::string>{"WATCHDOG=1", "STATUS=lag 0"}));
  stop_ = true;
  l->Tick(2100);
  l->Tick(2300);
  EXPECT_EQ(systemd_.Drain(),
            std::vector<std::string>{"STOPPING=1\nSTATUS=stopping: finishing the batch, draining the outbox"});
  l->Finish(Status::Ok());
  EXPECT_EQ(systemd_.Drain(), std::vector<std::string>{"STATUS=stopped"});
}

TEST_F(Lifecycle, ReloadingUntilTheEngineHasTriedTheReload) {
  auto l = Make(/*watchdog_usec=*/0);
  ready_ = true;
  l->Tick(1000);
  EXPECT_EQ(systemd_.Drain(), std::vector<std::string>{"READY=1\nSTATUS=lag 0"});
  hup_ = true;
  l->Tick(1100);
  EXPECT_FALSE(hup_.load());
  EXPECT_TRUE(engine_reload_.load()) << "the reload is handed to the engine";
  const auto reloading = systemd_.Drain();
  ASSERT_EQ(reloading.size(), 1u);
  EXPECT_EQ(reloading[0].rfind("RELOADING=1\nMONOTONIC_USEC=", 0), 0u) << reloading[0];
  l->Tick(1200);
  EXPECT_TRUE(systemd_.Drain().empty()) << "READY before the engine reloaded";
  engine_reload_ = false;
  reloads_ = 1;
  l->Tick(1300);
  EXPECT_EQ(systemd_.Drain(), std::vector<std::string>{"READY=1\nSTATUS=lag 0"});
  l->Finish(Status::Internal("the store could not be written"));
  EXPECT_EQ(systemd_.Drain(),
            std::vector<std::string>{"STOPPING=1\nSTATUS=engine stopped: the store could not be written"});
}

// The binary under a fake systemd.
TEST(ServiceNotifierRun, CityloopRunTellsSystemdReadyWatchdogReloadingAndStopping) {
  testing::TempDir dir;
  FakeSystemd systemd(dir.file("notify"));
  ASSERT_TRUE(systemd.bound());
  testing::EngineProcess engine(testing::ExampleConfigPath(), "", dir.file("store"), dir.file("engine.log"),
                                {"--embedded-kafka"}, {"NOTIFY_SOCKET=" + systemd.name(), "WATCHDOG_USEC=400000"});
  std::vector<std::string> seen;
  const std::string ready = systemd.WaitFor("READY=1", 60000, &seen);
  ASSERT_FALSE(ready.empty()) << engine.log();
  EXPECT_EQ(seen.size(), 1u) << "READY=1 is the first message: " << seen[0];
  EXPECT_NE(ready.find("\nSTATUS=ready: "), std::string::npos) << ready;
  EXPECT_EQ(engine.Get("/readyz").status, 200) << "READY=1 before /readyz said ready";
  // Pings every 200 ms while the loop turns.
  for (int i = 0; i < 3; ++i) EXPECT_EQ(systemd.WaitFor("WATCHDOG=1", 5000), "WATCHDOG=1") << i;
  engine.child().Kill(SIGHUP);
  EXPECT_FALSE(systemd.WaitFor("RELOADING=1\nMONOTONIC_USEC=", 10000).empty());
  EXPECT_FALSE(systemd.WaitFor("READY=1", 10000).empty()) << engine.log();
  engine.child().Kill(SIGTERM);
  EXPECT_FALSE(systemd.WaitFor("STOPPING=1", 10000).empty());
  EXPECT_EQ(engine.child().Wait(std::chrono::seconds(30)), 0) << engine.log();
  EXPECT_NE(engine.log().find("rules reloaded from"), std::string::npos) << engine.log();
}

}  // namespace
}  // namespace cityloop
