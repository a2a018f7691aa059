// console_bench: the console's live stream and REST API under load (see the
// "Console" section of docs/PERFORMANCE.md).
//
// Everything runs in this process, over loopback TCP, with a minimal socket
// HTTP client written here (one epoll thread reads every SSE client):
//
//   1. A backlog: app::RunSimulation (fast, not paced) produces --minutes of
//      the example city (--rate sensor readings per city second, camera
//      detections, reports, unit reports; an incident every
//      --incident-seconds on average) to the embedded broker, --partitions
//      partitions per topic.
//   2. Empty-handler baselines, on a bare console::HttpServer:
//      * round trip: GET /empty answering "{}" from one keep-alive client, and
//        from --rest-threads closed-loop clients at once;
//      * stream: GET /empty-stream, whose handler only keeps the StreamSink;
//        the bench writes each frame to every sink itself. 1 and --clients
//        connected clients, --events events at --event-rate per second.
//   3. Engine ingest, --reps times each, alternating: a fresh store, hub,
//      app::Engine (exit_when_caught_up), app::ConsoleBackend and
//      console::ApiServer catch up the backlog
//        A: with no stream client connected;
//        B: with --clients SSE clients on GET /api/v1/stream;
//      then --reps times
//        C: the same clients with ?type=bench.none. (no event matches: the
//           connections and the fanout's filtering, without the sending).
//      Rate = messages / (last message taken - first message taken), from the
//      engine's counter sampled every ms. In B, the delay of every case and
//      dispatch event the engine publishes (stamped by a hub subscriber
//      registered before the API's) to each client is measured too.
//   4. On a last stack, caught up (so its store holds the backlog's cases):
//      * stream: the same synthetic events as in 2 (the JSON of a stored
//        case event, new seqs) published through the EventHub to 1 and to
//        --clients API stream clients;
//      * REST: GET /api/v1/cases?status=open&limit=50 from --rest-threads
//        closed-loop clients for --rest-seconds, alone and while --clients
//        stream clients receive events.
//   Ratios are against the baselines of 2 measured in the same run.
//
// Run it from the project root (the default --config is relative):
//   ./build/bin/console_bench [--clients N] [--events E] [--event-rate R]
//                             [--reps K] [--minutes M] [--rate R] [--partitions P]
//                             [--incident-seconds I] [--rest-threads T]
//                             [--rest-seconds S] [--config PATH]
// Exit status: 0 when the benchmark ran (whether or not the goals are met),
// 2 on a setup failure.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "app/console_backend.h"
#include "app/engine.h"
#include "app/simulation.h"
#include "bench/bench_util.h"
#include "console/api.h"
#include "console/auth.h"
#include "console/backend.h"
#include "console/http_server.h"
#include "core/city.h"
#include "core/clock.h"
#include "core/config.h"
#include "core/metrics.h"
#include "core/time_util.h"
#include "ingest/broker.h"

namespace cityloop {
namespace {

constexpr const char* kBench = "console_bench";
constexpr const char* kToken = "bench-admin-token-0001";

using SteadyClock = std::chrono::steady_clock;
using TimePoint = SteadyClock::time_point;

[[noreturn]] void Fail(const std::string& what) {
  std::fflush(stdout);
  bench::Fail(kBench, "SETUP FAILURE: " + what);
}

template <typename T>
T Must(Result<T> r, const std::string& what) {
  return bench::Must(kBench, std::move(r), "SETUP FAILURE: " + what);
}

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(SteadyClock::now().time_since_epoch()).count();
}
double Seconds(TimePoint a, TimePoint b) { return std::chrono::duration<double>(b - a).count(); }

// Nearest-rank percentile.
double Pct(std::vector<double> v, double p) {
  if (v.empty()) return NAN;
  std::sort(v.begin(), v.end());
  size_t rank = static_cast<size_t>(std::ceil(p / 100.0 * static_cast<double>(v.size())));
  rank = std::clamp<size_t>(rank, 1, v.size());
  return v[rank - 1];
}
double Median(std::vector<double> v) { return Pct(std::move(v), 50); }

// ---------------------------------------------------------------- flags

struct Flags {
  int clients = 200;
  int events = 600;
  double event_rate = 200;  // events/s
  int reps = 3;
  double minutes = 120;  // of city time in the backlog
  double rate = 50;     // readings per second of city time
  int partitions = 32;  // per topic (the mock broker keeps ~5 MiB per partition)
  int incident_seconds = 20;
  int rest_threads = 4;
  double rest_seconds = 3;
  std::string config = "deploy/cityloop.example.yaml";
};

Flags ParseFlags(int argc, char** argv) {
  Flags f;
  bench::ForEachFlag(kBench, argc, argv, [&](const std::string& flag, auto value) {
    try {
      if (flag == "--clients") f.clients = std::stoi(value());
      else if (flag == "--events") f.events = std::stoi(value());
      else if (flag == "--event-rate") f.event_rate = std::stod(value());
      else if (flag == "--reps") f.reps = std::stoi(value());
      else if (flag == "--minutes") f.minutes = std::stod(value());
      else if (flag == "--rate") f.rate = std::stod(value());
      else if (flag == "--partitions") f.partitions = std::stoi(value());
      else if (flag == "--incident-seconds") f.incident_seconds = std::stoi(value());
      else if (flag == "--rest-threads") f.rest_threads = std::stoi(value());
      else if (flag == "--rest-seconds") f.rest_seconds = std::stod(value());
      else if (flag == "--config") f.config = value();
      else return false;
    } catch (const std::exception& e) {
      Fail("bad value for " + flag + ": " + e.what());
    }
    return true;
  });
  if (f.clients < 1 || f.events < 10 || f.event_rate <= 0 || f.reps < 1 || f.minutes <= 0 ||
      f.incident_seconds < 1 || f.rate <= 0 || f.partitions < 1 || f.partitions > 256 || f.rest_threads < 1 || f.rest_seconds <= 0) {
    Fail("flags out of range");
  }
  return f;
}

// ---------------------------------------------------------------- sockets

int Connect(uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) Fail(std::string("socket: ") + std::strerror(errno));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    Fail(std::string("connect: ") + std::strerror(errno));
  }
  const int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

void SendAll(int fd, const std::string& bytes) {
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::send(fd, bytes.data() + done, bytes.size() - done, MSG_NOSIGNAL);
    if (n <= 0) Fail("send failed");
    done += static_cast<size_t>(n);
  }
}

std::string Get(const std::string& target, bool auth) {
  std::string r = "GET " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\n";
  if (auth) r += std::string("Authorization: Bearer ") + kToken + "\r\n";
  return r + "\r\n";
}

// A keep-alive client: one request at a time, Content-Length bodies only.
class Client {
 public:
  explicit Client(uint16_t port) : fd_(Connect(port)) {}
  ~Client() { ::close(fd_); }
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // The status; the body in *body.
  int Request(const std::string& request, std::string* body) {
    SendAll(fd_, request);
    size_t end;
    while ((end = buf_.find("\r\n\r\n")) == std::string::npos) Fill();
    const int status = std::atoi(buf_.c_str() + 9);
    size_t len = 0;
    std::string head = buf_.substr(0, end);
    for (char& c : head) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (auto p = head.find("content-length:"); p != std::string::npos) len = std::stoul(head.substr(p + 15));
    buf_.erase(0, end + 4);
    while (buf_.size() < len) Fill();
    body->assign(buf_, 0, len);
    buf_.erase(0, len);
    return status;
  }

 private:
  void Fill() {
    char tmp[65536];
    const ssize_t n = ::recv(fd_, tmp, sizeof tmp, 0);
    if (n <= 0) Fail("the server closed a REST connection");
    buf_.append(tmp, static_cast<size_t>(n));
  }
  int fd_;
  std::string buf_;
};

double ProcessCpuSeconds() {
  rusage ru{};
  ::getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

double ThreadCpuSeconds() {
  timespec ts{};
  ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

// Send time (steady ns) of each event, by seq.
class Stamps {
 public:
  void Set(uint64_t seq, int64_t ns) { at_[seq % kSize].store(ns, std::memory_order_release); }
  int64_t Get(uint64_t seq) const { return at_[seq % kSize].load(std::memory_order_acquire); }

 private:
  static constexpr size_t kSize = 1 << 20;
  std::vector<std::atomic<int64_t>> at_ = std::vector<std::atomic<int64_t>>(kSize);
};

// N SSE clients read by one epoll thread. Every event's delay (receipt -
// stamp of its id) is kept.
class SseFleet {
 public:
  SseFleet(uint16_t port, const std::string& target, bool auth, int n, const Stamps& stamps) : stamps_(stamps) {
    ep_ = ::epoll_create1(0);
    if (ep_ < 0) Fail("epoll_create1");
    conns_.resize(static_cast<size_t>(n));
    for (int i = 0; i < n; ++i) {
      Conn& c = conns_[static_cast<size_t>(i)];
      c.fd = Connect(port);
      SendAll(c.fd, Get(target, auth));
      // The head, blocking (a stream's head has no Content-Length). An API
      // stream is registered with the fanout before its head is sent.
      while (c.buf.find("\r\n\r\n") == std::string::npos) {
        pollfd p{c.fd, POLLIN, 0};
        if (::poll(&p, 1, 10000) <= 0) Fail("no stream head within 10 s (client " + std::to_string(i) + ")");
        char tmp[4096];
        const ssize_t got = ::recv(c.fd, tmp, sizeof tmp, 0);
        if (got <= 0) Fail("a stream closed before its head (client " + std::to_string(i) + ")");
        c.buf.append(tmp, static_cast<size_t>(got));
      }
      if (c.buf.compare(0, 12, "HTTP/1.1 200") != 0) Fail("stream refused: " + c.buf.substr(0, c.buf.find("\r\n")));
      c.buf.erase(0, c.buf.find("\r\n\r\n") + 4);
      epoll_event ev{};
      ev.events = EPOLLIN;
      ev.data.u64 = static_cast<uint64_t>(i);
      if (::epoll_ctl(ep_, EPOLL_CTL_ADD, c.fd, &ev) != 0) Fail("epoll_ctl");
    }
    reader_ = std::thread([this] { Read(); });
  }
  ~SseFleet() {
    running_.store(false);
    reader_.join();
    for (auto& c : conns_) ::close(c.fd);
    ::close(ep_);
  }
  SseFleet(const SseFleet&) = delete;
  SseFleet& operator=(const SseFleet&) = delete;

  // Waits until `events` events reached every client (or timeout); false on timeout.
  bool WaitFor(int64_t events, std::chrono::milliseconds timeout) {
    const auto until = SteadyClock::now() + timeout;
    while (SteadyClock::now() < until) {
      if (received_.load() >= events * static_cast<int64_t>(conns_.size())) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return false;
  }
  // After the reader stopped (destructor) or between phases: a copy.
  std::vector<double> TakeDelaysMs() {
    std::lock_guard<std::mutex> lock(mu_);
    return std::move(delays_ms_);
  }
  int64_t received() const { return received_.load(); }
  int closed() const { return closed_.load(); }
  size_t size() const { return conns_.size(); }
  // CPU time the reader thread has used so far.
  double reader_cpu_s() const { return reader_cpu_s_.load(); }

 private:
  struct Conn {
    int fd = -1;
    std::string buf;
    bool open = true;
  };

  void Read() {
    std::array<epoll_event, 256> evs{};
    char tmp[65536];
    std::vector<double> local;
    while (running_.load()) {
      const int n = ::epoll_wait(ep_, evs.data(), static_cast<int>(evs.size()), 20);
      for (int k = 0; k < n; ++k) {
        Conn& c = conns_[evs[static_cast<size_t>(k)].data.u64];
        const ssize_t got = ::recv(c.fd, tmp, sizeof tmp, MSG_DONTWAIT);
        if (got <= 0) {
          if (got == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) {
            if (c.open) closed_.fetch_add(1);
            c.open = false;
            ::epoll_ctl(ep_, EPOLL_CTL_DEL, c.fd, nullptr);
          }
          continue;
        }
        const int64_t now = NowNs();
        c.buf.append(tmp, static_cast<size_t>(got));
        size_t start = 0, end;
        int64_t events = 0;
        while ((end = c.buf.find("\n\n", start)) != std::string::npos) {
          if (c.buf.compare(start, 4, "id: ") == 0) {
            const uint64_t seq = std::strtoull(c.buf.c_str() + start + 4, nullptr, 10);
            const int64_t sent = stamps_.Get(seq);
            if (sent > 0) local.push_back(static_cast<double>(now - sent) / 1e6);
            ++events;
          }
          start = end + 2;
        }
        c.buf.erase(0, start);
        if (!local.empty()) {
          std::lock_guard<std::mutex> lock(mu_);
          delays_ms_.insert(delays_ms_.end(), local.begin(), local.end());
          local.clear();
        }
        received_.fetch_add(events);
      }
      reader_cpu_s_.store(ThreadCpuSeconds());
    }
  }

  const Stamps& stamps_;
  int ep_ = -1;
  std::vector<Conn> conns_;
  std::thread reader_;
  std::atomic<bool> running_{true};
  std::atomic<int64_t> received_{0};
  std::atomic<int> closed_{0};
  std::atomic<double> reader_cpu_s_{0};
  std::mutex mu_;
  std::vector<double> delays_ms_;
};

// ---------------------------------------------------------------- pieces

struct Latency {
  double p50 = NAN, p99 = NAN, max = NAN;
  size_t n = 0;
};
Latency Summarize(const std::vector<double>& v) {
  Latency l;
  l.n = v.size();
  if (v.empty()) return l;
  l.p50 = Pct(v, 50);
  l.p99 = Pct(v, 99);
  l.max = *std::max_element(v.begin(), v.end());
  return l;
}
void PrintLatency(const char* what, const Latency& l, const char* unit = "ms") {
  std::printf("  %-58s p50 %8.3f  p99 %8.3f  max %8.3f %s  (n=%zu)\n", what, l.p50, l.p99, l.max, unit, l.n);
}

// Closed-loop GETs from `threads` clients for `seconds`; round trips in ms.
std::vector<double> RoundTrips(uint16_t port, const std::string& target, bool auth, int threads, double seconds,
                               int64_t* failures, size_t* body_bytes) {
  std::vector<std::vector<double>> per(static_cast<size_t>(threads));
  std::atomic<int64_t> bad{0};
  std::atomic<size_t> bytes{0};
  const auto until = SteadyClock::now() + std::chrono::duration_cast<SteadyClock::duration>(
                                              std::chrono::duration<double>(seconds));
  std::vector<std::thread> ts;
  for (int t = 0; t < threads; ++t) {
    ts.emplace_back([&, t] {
      Client c(port);
      const std::string req = Get(target, auth);
      std::string body;
      auto& out = per[static_cast<size_t>(t)];
      while (SteadyClock::now() < until) {
        const auto a = SteadyClock::now();
        const int status = c.Request(req, &body);
        out.push_back(std::chrono::duration<double, std::milli>(SteadyClock::now() - a).count());
        if (status != 200) bad.fetch_add(1);
        bytes.store(body.size());
      }
    });
  }
  for (auto& t : ts) t.join();
  std::vector<double> all;
  for (auto& v : per) all.insert(all.end(), v.begin(), v.end());
  if (failures) *failures = bad.load();
  if (body_bytes) *body_bytes = bytes.load();
  return all;
}

// Publishes `events` frames at `rate`/s through publish(seq), stamping each.
template <typename Publish>
void Pace(int events, double rate, uint64_t first_seq, Stamps& stamps, Publish publish) {
  const auto t0 = SteadyClock::now();
  for (int i = 0; i < events; ++i) {
    const auto due = t0 + std::chrono::duration_cast<SteadyClock::duration>(
                              std::chrono::duration<double>(static_cast<double>(i) / rate));
    std::this_thread::sleep_until(due);
    const uint64_t seq = first_seq + static_cast<uint64_t>(i);
    stamps.Set(seq, NowNs());
    publish(seq);
  }
}

// The empty-handler stream: the handler keeps the sink; Broadcast writes to all.
class BareStream {
 public:
  std::map<std::string, console::Handler> Routes() {
    std::map<std::string, console::Handler> routes;
    routes["GET /empty"] = [](const console::HttpRequest&) {
      console::HttpResponse r;
      r.body = "{}";
      return r;
    };
    routes["GET /empty-stream"] = [this](const console::HttpRequest&) {
      console::HttpResponse r;
      r.content_type = "text/event-stream";
      auto s = std::make_shared<console::StreamResponse>();
      s->start = [this](std::shared_ptr<console::StreamSink> sink) {
        std::lock_guard<std::mutex> lock(mu_);
        sinks_.push_back(std::move(sink));
      };
      s->on_close = [](console::StreamEnd) {};
      r.stream = std::move(s);
      return r;
    };
    return routes;
  }
  void Broadcast(const std::string& frame) {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& s : sinks_) s->Write(frame);
  }
  size_t sinks() {
    std::lock_guard<std::mutex> lock(mu_);
    return sinks_.size();
  }
  void Clear() {
    std::lock_guard<std::mutex> lock(mu_);
    sinks_.clear();
  }

 private:
  std::mutex mu_;
  std::vector<std::shared_ptr<console::StreamSink>> sinks_;
};

void WaitUntil(const std::function<bool()>& cond, const std::string& what) {
  const auto until = SteadyClock::now() + std::chrono::seconds(10);
  while (!cond()) {
    if (SteadyClock::now() > until) Fail("timed out waiting for " + what);
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
}

std::string GroupId() {
  static int seq = 0;
  return "cbench-" + std::to_string(::getpid()) + "-" + std::to_string(++seq);
}

// What the engine and the console are run with: the example's api section,
// one admin token, room for the clients, no access log.
ApiOptions BenchApiOptions(const Config& cfg, int clients) {
  ApiOptions o = cfg.api;
  ApiOptions::Token t;
  t.name = "bench";
  t.sha256 = console::Sha256Hex(kToken);
  t.role = Role::kAdmin;
  o.tokens = {t};
  // Room for a closed fleet's streams, which the server only notices at
  // its next write to them, next to the new fleet's.
  o.max_streams = std::max(o.max_streams, 3 * clients + 8);
  o.max_streams_per_token = std::max(o.max_streams_per_token, 3 * clients + 8);
  o.max_connections = std::max(o.max_connections, 3 * clients + 64);
  o.access_log = false;
  return o;
}

// One engine over a fresh store (fresh consumer group), its hub with the
// bench's stamping subscriber first, the ConsoleBackend and the ApiServer.
struct Stack {
  bench::TempDir dir{kBench, "cbench"};
  std::shared_ptr<const CityModel> city;
  MetricsRegistry metrics;     // the engine's
  MetricsRegistry api_metrics; // the API's
  console::EventHub hub;
  std::unique_ptr<console::EventHub::Subscription> stamp_sub;
  std::unique_ptr<app::Engine> engine;
  std::unique_ptr<app::ConsoleBackend> backend;
  std::unique_ptr<console::ApiServer> api;
  std::atomic<int64_t> published{0};

  Stack(const Config& base, const std::string& bootstrap, const Clock& clock, int clients, Stamps* stamps) {
    Config cfg = base;
    cfg.kafka.group_id = GroupId();  // a fresh store must not resume from another run's commits
    city = Must(CityModel::Build(cfg), "city model");
    stamp_sub = hub.Subscribe([this, stamps](const console::StreamEvent& e) {
      if (stamps) stamps->Set(e.seq, NowNs());
      published.fetch_add(1, std::memory_order_relaxed);
    });
    app::EngineOptions eo;
    eo.bootstrap = bootstrap;
    eo.store_path = dir.path() + "/store";
    eo.exit_when_caught_up = true;
    eo.hub = &hub;
    engine = Must(app::Engine::Create(city, eo, clock, &metrics), "engine");
    backend = Must(app::ConsoleBackend::Create(city, *engine, hub, bootstrap), "console backend");
    api = Must(console::ApiServer::Start(*backend, BenchApiOptions(cfg, clients), api_metrics, "127.0.0.1:0"),
               "api server");
  }
  ~Stack() {
    api->Stop();
    api.reset();
    backend.reset();
    engine.reset();
  }
  Stack(const Stack&) = delete;
  Stack& operator=(const Stack&) = delete;

  struct Run {
    int64_t messages = 0;
    double steady_rate = 0;  // msgs/s, first to last message taken
    double wall_s = 0;       // Run() start to return
    double cpu_s = 0;        // the whole process's CPU time (user + system) over Run()
  };
  // Catches up the backlog; samples the message counter every ms.
  Run CatchUp() {
    Counter& messages = metrics.GetCounter("cityloop_ingest_messages_total", "Input messages read from Kafka");
    struct Sample {
      TimePoint at;
      int64_t messages;
    };
    std::vector<Sample> samples;
    samples.reserve(1 << 16);
    std::atomic<bool> sampling{true};
    std::thread sampler([&] {
      while (sampling.load()) {
        samples.push_back({SteadyClock::now(), messages.value()});
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      }
      samples.push_back({SteadyClock::now(), messages.value()});
    });
    std::atomic<bool> stop{false};
    const double cpu0 = ProcessCpuSeconds();
    const auto t0 = SteadyClock::now();
    const Status st = engine->Run(stop);
    const auto t1 = SteadyClock::now();
    const double cpu1 = ProcessCpuSeconds();
    sampling.store(false);
    sampler.join();
    if (!st.ok()) Fail("engine run: " + st.ToString());
    Run r;
    r.messages = messages.value();
    r.wall_s = Seconds(t0, t1);
    r.cpu_s = cpu1 - cpu0;
    // First sample with a message taken, first sample with all of them.
    TimePoint first = t0, last = t1;
    int64_t at_first = 0;
    for (const auto& s : samples) {
      if (s.messages > 0) {
        first = s.at;
        at_first = s.messages;
        break;
      }
    }
    for (const auto& s : samples) {
      if (s.messages >= r.messages) {
        last = s.at;
        break;
      }
    }
    const double span = Seconds(first, last);
    r.steady_rate = span > 0 ? static_cast<double>(r.messages - at_first) / span : 0;
    return r;
  }
};

void RaiseFdLimit() {
  rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &rl);
  }
}

const char* Verdict(bool pass) { return pass ? "PASS" : "FAIL"; }

int Main(int argc, char** argv) {
  const Flags f = ParseFlags(argc, argv);
  spdlog::set_level(spdlog::level::warn);
  RaiseFdLimit();
  const auto bench_t0 = SteadyClock::now();

  ConfigLoadResult loaded = LoadConfigFile(f.config);
  if (!loaded.config) {
    std::string all;
    for (const auto& e : loaded.errors) all += "\n  " + e.ToString();
    Fail("config " + f.config + " does not load (run from the project root):" + all);
  }
  Config base = *loaded.config;
  base.kafka.partitions = f.partitions;
  auto city = Must(CityModel::Build(base), "city model");

  std::printf("console_bench: %d stream clients, %d events at %.0f/s, %d REST threads x %.1f s, %d reps\n",
              f.clients, f.events, f.event_rate, f.rest_threads, f.rest_seconds, f.reps);

  // ---- 1. the backlog
  auto broker = Must(ingest::EmbeddedBroker::Start(ingest::BrokerOptionsFor(base.kafka)), "embedded broker");
  const std::string bootstrap = broker->bootstrap();
  app::SimulationRun run;
  run.bootstrap = bootstrap;
  run.paced = false;
  run.sim.seed = 7;
  run.sim.start_ms = *ParseRfc3339Ms("2026-11-28T17:00:00+08:00");
  run.sim.duration_ms = static_cast<int64_t>(f.minutes * 60000);
  run.sim.rate = f.rate;
  run.sim.incident_every_ms = int64_t{f.incident_seconds} * 1000;
  ManualClock clock(run.sim.start_ms + run.sim.duration_ms + 60000);
  {
    std::atomic<bool> stop{false};
    const auto t0 = SteadyClock::now();
    auto sim = Must(app::RunSimulation(city, run, clock, stop), "simulation");
    std::printf("[backlog] %lld records (%lld incidents) of %.0f city minutes produced in %.2f s\n",
                static_cast<long long>(sim.produced), static_cast<long long>(sim.incidents), f.minutes,
                Seconds(t0, SteadyClock::now()));
  }

  Stamps stamps;

  // ---- 2. empty-handler baselines
  std::printf("[baseline] empty handlers on a bare console::HttpServer (%d threads)\n", base.api.threads);
  BareStream bare;
  Latency base_rtt1, base_rttN, base_stream1, base_streamN;
  {
    auto server = Must(console::HttpServer::Start("127.0.0.1:0", bare.Routes(), base.api.threads), "bare server");
    const uint16_t port = server->port();
    int64_t bad = 0;
    base_rtt1 = Summarize(RoundTrips(port, "/empty", false, 1, 1.0, &bad, nullptr));
    PrintLatency("GET /empty round trip, 1 client", base_rtt1);
    base_rttN = Summarize(RoundTrips(port, "/empty", false, f.rest_threads, f.rest_seconds, &bad, nullptr));
    char what[128];
    std::snprintf(what, sizeof what, "GET /empty round trip, %d clients", f.rest_threads);
    PrintLatency(what, base_rttN);
    if (bad) Fail("bare GET /empty failed");
    const std::string json = R"({"specversion":"1.0","type":"city.case.opened","data":{}})";
    uint64_t seq = 1;
    for (int n : {1, f.clients}) {
      bare.Clear();
      SseFleet fleet(port, "/empty-stream", false, n, stamps);
      WaitUntil([&] { return bare.sinks() == static_cast<size_t>(n); }, "bare stream sinks");
      Pace(f.events, f.event_rate, seq, stamps, [&](uint64_t s) {
        bare.Broadcast("id: " + std::to_string(s) + "\nevent: city.case.opened\ndata: " + json + "\n\n");
      });
      if (!fleet.WaitFor(f.events, std::chrono::seconds(10))) {
        std::printf("  WARNING: bare stream: %lld of %lld events arrived\n", static_cast<long long>(fleet.received()),
                    static_cast<long long>(f.events) * n);
      }
      seq += static_cast<uint64_t>(f.events);
      const Latency l = Summarize(fleet.TakeDelaysMs());
      std::snprintf(what, sizeof what, "empty-handler stream, %d client%s, write -> receipt", n, n == 1 ? "" : "s");
      PrintLatency(what, l);
      (n == 1 ? base_stream1 : base_streamN) = l;
    }
    bare.Clear();
    server->Stop();
  }

  // ---- 3. engine ingest with 0 and N stream clients
  std::printf("[ingest] engine catching up the backlog, API server up; A = no stream client, B = %d clients\n",
              f.clients);
  std::vector<double> rate_a, rate_b;
  std::vector<double> engine_delays;
  int64_t engine_events = 0, engine_events_expected = 0;
  int dropped_b = 0;
  for (int rep = 0; rep < f.reps; ++rep) {
    {
      Stack a(base, bootstrap, clock, f.clients, nullptr);
      const Stack::Run r = a.CatchUp();
      rate_a.push_back(r.steady_rate);
      std::printf("  rep %d A: %lld msgs, %.0f msgs/s steady, %.2f s wall, %.2f s process CPU, %lld events published\n",
                  rep + 1, static_cast<long long>(r.messages), r.steady_rate, r.wall_s, r.cpu_s,
                  static_cast<long long>(a.published.load()));
    }
    {
      Stack b(base, bootstrap, clock, f.clients, &stamps);
      SseFleet fleet(b.api->port(), "/api/v1/stream", true, f.clients, stamps);
      const double reader0 = fleet.reader_cpu_s();
      const Stack::Run r = b.CatchUp();
      const double reader_cpu = fleet.reader_cpu_s() - reader0;
      const int64_t published = b.published.load();
      if (!fleet.WaitFor(published, std::chrono::seconds(10))) {
        std::printf("  WARNING: %lld of %lld events reached the clients\n", static_cast<long long>(fleet.received()),
                    static_cast<long long>(published) * f.clients);
      }
      rate_b.push_back(r.steady_rate);
      auto d = fleet.TakeDelaysMs();
      engine_delays.insert(engine_delays.end(), d.begin(), d.end());
      engine_events += fleet.received();
      engine_events_expected += published * f.clients;
      dropped_b += fleet.closed();
      std::printf(
          "  rep %d B: %lld msgs, %.0f msgs/s steady, %.2f s wall, %.2f s process CPU (%.2f s of it the bench's SSE "
          "reader), %lld events x %d clients, %d dropped\n",
          rep + 1, static_cast<long long>(r.messages), r.steady_rate, r.wall_s, r.cpu_s, reader_cpu,
          static_cast<long long>(published), f.clients, fleet.closed());
    }
  }
  // C: the same clients, with a filter no event matches: they hold their
  // connections and the fanout still sees every event, but nothing is sent.
  std::vector<double> rate_c;
  for (int rep = 0; rep < f.reps; ++rep) {
    Stack cc(base, bootstrap, clock, f.clients, nullptr);
    SseFleet fleet(cc.api->port(), "/api/v1/stream?type=bench.none.", true, f.clients, stamps);
    const Stack::Run r = cc.CatchUp();
    rate_c.push_back(r.steady_rate);
    std::printf("  rep %d C (%d clients, filter matches nothing): %.0f msgs/s steady, %lld events received\n",
                rep + 1, f.clients, r.steady_rate, static_cast<long long>(fleet.received()));
  }
  const double ra = Median(rate_a), rb = Median(rate_b);
  const double ingest_ratio = rb / ra;
  std::printf("  median A %.0f msgs/s, median B %.0f msgs/s: ratio B/A %.3f (goal >= 0.95); C/A %.3f\n", ra, rb,
              ingest_ratio, Median(rate_c) / ra);
  const Latency engine_lat = Summarize(engine_delays);
  PrintLatency("engine events, hub publish -> client receipt (B, all reps)", engine_lat);
  std::printf("  %lld of %lld event deliveries arrived\n", static_cast<long long>(engine_events),
              static_cast<long long>(engine_events_expected));

  // ---- 4. the console over a caught-up store
  std::printf("[console] a caught-up engine's store, ConsoleBackend, ApiServer (%d threads)\n", base.api.threads);
  Stack c(base, bootstrap, clock, f.clients, &stamps);
  c.CatchUp();
  std::vector<console::StreamEvent> sample;
  if (!c.backend->EventsAfter(0, 1, &sample).ok() || sample.empty()) Fail("the caught-up store holds no event");
  const std::string event_json = sample[0].json;
  int64_t cases = 0;
  (void)c.backend->ForEachCase("", [&](const nlohmann::json&) {
    ++cases;
    return true;
  });
  std::printf("  store: %lld cases, %llu events; synthetic event = a stored %s event (%zu bytes)\n",
              static_cast<long long>(cases), static_cast<unsigned long long>(c.hub.last_seq()),
              sample[0].topic.c_str(), event_json.size());
  const uint16_t port = c.api->port();
  Latency api_stream1, api_streamN;
  char what[160];
  for (int n : {1, f.clients}) {
    SseFleet fleet(port, "/api/v1/stream", true, n, stamps);
    const uint64_t first = c.hub.last_seq() + 1;
    Pace(f.events, f.event_rate, first, stamps, [&](uint64_t s) {
      c.hub.Publish({console::StreamEvent{s, sample[0].topic, event_json}});
    });
    if (!fleet.WaitFor(f.events, std::chrono::seconds(10))) {
      std::printf("  WARNING: API stream: %lld of %lld events arrived, %d clients dropped\n",
                  static_cast<long long>(fleet.received()), static_cast<long long>(f.events) * n, fleet.closed());
    }
    const Latency l = Summarize(fleet.TakeDelaysMs());
    std::snprintf(what, sizeof what, "API stream, %d client%s, hub publish -> receipt", n, n == 1 ? "" : "s");
    PrintLatency(what, l);
    (n == 1 ? api_stream1 : api_streamN) = l;
  }

  const std::string cases_target = "/api/v1/cases?status=open&limit=50";
  int64_t bad = 0;
  size_t body = 0;
  const Latency rest_alone =
      Summarize(RoundTrips(port, cases_target, true, f.rest_threads, f.rest_seconds, &bad, &body));
  if (bad) Fail(std::to_string(bad) + " REST requests failed");
  std::snprintf(what, sizeof what, "GET %s, %d clients", cases_target.c_str(), f.rest_threads);
  PrintLatency(what, rest_alone);
  {
    Client probe(port);
    std::string b;
    probe.Request(Get(cases_target, true), &b);
    const auto j = nlohmann::json::parse(b, nullptr, false);
    size_t items = 0;
    if (j.is_object()) {
      for (const auto& [k, v] : j.items()) {
        if (v.is_array()) items = v.size();
      }
    }
    std::printf("  (response: %zu cases, %zu bytes)\n", items, body);
  }
  Latency rest_loaded;
  {
    SseFleet fleet(port, "/api/v1/stream", true, f.clients, stamps);
    std::atomic<bool> publishing{true};
    std::thread pub([&] {
      uint64_t s = c.hub.last_seq() + 1;
      const auto t0 = SteadyClock::now();
      for (int i = 0; publishing.load(); ++i, ++s) {
        std::this_thread::sleep_until(t0 + std::chrono::duration_cast<SteadyClock::duration>(
                                               std::chrono::duration<double>(static_cast<double>(i) / f.event_rate)));
        stamps.Set(s, NowNs());
        c.hub.Publish({console::StreamEvent{s, sample[0].topic, event_json}});
      }
    });
    rest_loaded = Summarize(RoundTrips(port, cases_target, true, f.rest_threads, f.rest_seconds, &bad, nullptr));
    publishing.store(false);
    pub.join();
    if (bad) Fail(std::to_string(bad) + " REST requests failed under stream load");
    std::snprintf(what, sizeof what, "same, while %d stream clients get %.0f events/s", f.clients, f.event_rate);
    PrintLatency(what, rest_loaded);
    const Latency during = Summarize(fleet.TakeDelaysMs());
    std::snprintf(what, sizeof what, "  API stream, %d clients, during the REST load", f.clients);
    PrintLatency(what, during);
  }

  // ---- summary
  std::printf("\n[summary] ratios against the in-run empty-handler baselines\n");
  auto line = [](const char* name, double v, const char* unit, const char* base_name, double b) {
    std::printf("  %-52s %9.3f %-6s baseline %-38s %9.3f  ratio %8.2f\n", name, v, unit, base_name, b, v / b);
  };
  line("stream p99, 1 API client", api_stream1.p99, "ms", "empty-handler stream p99, 1 client", base_stream1.p99);
  line("stream p99, N API clients", api_streamN.p99, "ms", "empty-handler stream p99, N clients", base_streamN.p99);
  line("stream p99, N API clients", api_streamN.p99, "ms", "API stream p99, 1 client", api_stream1.p99);
  line("stream p99, N API clients", api_streamN.p99, "ms", "empty-handler round trip p99, 1 client", base_rtt1.p99);
  line("engine events p99, N API clients", engine_lat.p99, "ms", "empty-handler round trip p99, 1 client",
       base_rtt1.p99);
  line("REST cases p99", rest_alone.p99, "ms", "empty-handler round trip p99, T clients", base_rttN.p99);
  line("REST cases p99, N streams live", rest_loaded.p99, "ms", "empty-handler round trip p99, T clients",
       base_rttN.p99);
  line("engine ingest rate, N clients (median)", rb, "msg/s", "no clients (median)", ra);
  const double stream_p99 = std::max(api_streamN.p99, engine_lat.p99);
  std::printf("\nGOAL stream p99 < 50 ms with %d clients: %.2f ms (synthetic %.2f, engine %.2f)  %s\n", f.clients,
              stream_p99, api_streamN.p99, engine_lat.p99, Verdict(stream_p99 < 50 && dropped_b == 0));
  std::printf("GOAL ingest rate with %d clients >= 0.95 x without: %.3f  %s\n", f.clients, ingest_ratio,
              Verdict(ingest_ratio >= 0.95));
  std::printf("INFO REST p99 under load: %.2f ms (%.1fx the empty handler's %.2f ms; no numeric goal)\n",
              rest_loaded.p99, rest_loaded.p99 / base_rttN.p99, base_rttN.p99);
  std::printf("whole run %.1f s wall\n", Seconds(bench_t0, SteadyClock::now()));
  std::fflush(stdout);
  return 0;
}

}  // namespace
}  // namespace cityloop

int main(int argc, char** argv) { return cityloop::Main(argc, argv); }
