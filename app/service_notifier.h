// systemd integration of `cityloop run` (deploy/cityloop.service, docs/DEPLOY.md).
//
// ServiceNotifier speaks the sd_notify protocol directly (no libsystemd): one
// datagram of newline-separated VAR=value assignments per call, sent to the
// AF_UNIX socket named by $NOTIFY_SOCKET (a path, or "@name" for the abstract
// namespace). Without NOTIFY_SOCKET it is a no-op. $WATCHDOG_USEC turns on the
// watchdog unless $WATCHDOG_PID names another process.
//
// ServiceLifecycle decides what to tell systemd, from its own thread (Start)
// or step by step (Tick, for tests):
//   READY=1      once the service is ready (hooks.ready: engine assigned its
//                partitions and the brokers reachable; HTTP already listens);
//   STATUS=...   with READY, then every status_every_ms (hooks.status);
//   WATCHDOG=1   every half of WATCHDOG_USEC, but only while the engine
//                loop's heartbeat (Engine::loop_heartbeat_ms) is younger than
//                that half: a stalled loop stops the pings and systemd
//                restarts the service;
//   RELOADING=1 (with MONOTONIC_USEC) when SIGHUP asks for a reload, handed
//                on to the engine; READY=1 once the engine has tried it
//                (hooks.reloads_done went up);
//   STOPPING=1   as soon as a stop is requested (SIGTERM), or the engine
//                stopped by itself.
// Owned by RunServiceCommand (app/commands.cc). Tick and Finish run on one
// thread at a time: the lifecycle's own once Start was called.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <thread>

#include "core/status.h"

namespace cityloop::app {

struct NotifyEnvironment {
  std::string socket;         // $NOTIFY_SOCKET; empty = not under systemd
  int64_t watchdog_usec = 0;  // 0 = no watchdog
};

// Reads NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID; a WATCHDOG_PID other
// than `self` turns the watchdog off (it is meant for another process).
NotifyEnvironment NotifyEnvironmentFromEnv(pid_t self);

class ServiceNotifier {
 public:
  explicit ServiceNotifier(NotifyEnvironment env);
  ~ServiceNotifier();
  ServiceNotifier(const ServiceNotifier&) = delete;
  ServiceNotifier& operator=(const ServiceNotifier&) = delete;

  bool enabled() const { return !env_.socket.empty(); }
  int64_t watchdog_usec() const { return env_.watchdog_usec; }
  // Sends `state` ("READY=1\nSTATUS=...") in one datagram; Ok and nothing
  // sent when disabled.
  Status Notify(std::string_view state);

 private:
  Status Open();
  NotifyEnvironment env_;
  int fd_ = -1;
};

struct LifecycleHooks {
  std::function<bool()> ready;
  std::function<int64_t()> heartbeat_ms;  // steady-clock ms of the loop's last iteration; 0 = not yet
  std::function<std::string()> status;    // one short line
  std::function<int64_t()> reloads_done;  // reload attempts the engine finished (applied + rejected)
};

struct LifecycleFlags {
  const std::atomic<bool>* stop = nullptr;      // set by SIGTERM / SIGINT
  std::atomic<bool>* reload_request = nullptr;  // set by SIGHUP
  std::atomic<bool>* engine_reload = nullptr;   // handed to Engine::Run
};

class ServiceLifecycle {
 public:
  ServiceLifecycle(ServiceNotifier* notifier, LifecycleHooks hooks, LifecycleFlags flags,
                   int64_t status_every_ms = 5000);
  ~ServiceLifecycle();  // stops the thread
  ServiceLifecycle(const ServiceLifecycle&) = delete;
  ServiceLifecycle& operator=(const ServiceLifecycle&) = delete;

  // Runs Tick on a thread of its own, every few tens of ms, until Finish;
  // nothing when the notifier is disabled (not under systemd).
  void Start();
  // One step at steady-clock time now_ms.
  void Tick(int64_t now_ms);
  // The engine returned: STOPPING=1 if not yet sent, and a last STATUS.
  // Stops the thread first.
  void Finish(const Status& result);

  bool ready_sent() const { return ready_sent_; }
  int64_t watchdog_pings() const { return pings_; }

 private:
  void Send(const std::string& state);
  void StopThread();

  ServiceNotifier* notifier_;
  LifecycleHooks hooks_;
  LifecycleFlags flags_;
  int64_t status_every_ms_;
  int64_t watchdog_half_ms_ = 0;  // 0 = no watchdog
  bool ready_sent_ = false;
  bool stopping_sent_ = false;
  bool reloading_ = false;
  bool stalled_logged_ = false;
  int64_t reload_base_ = 0;
  int64_t last_ping_ms_ = 0;
  int64_t last_status_ms_ = 0;
  int64_t pings_ = 0;
  std::atomic<bool> finish_{false};
  std::thread thread_;
};

// Steady-clock milliseconds, the unit of Engine::loop_heartbeat_ms.
int64_t SteadyNowMs();

}  // namespace cityloop::app
