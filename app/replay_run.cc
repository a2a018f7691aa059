#include "app/replay_run.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "app/pipeline.h"
#include "core/clock.h"
#include "core/time_util.h"
#include "storage/store.h"

namespace cityloop::app {
namespace {

using nlohmann::json;
using SteadyClock = std::chrono::steady_clock;

// Progress on stderr: events, event-time position, rate and ETA.
class ProgressMeter {
 public:
  ProgressMeter(ReplayOptions::Progress mode, uint64_t expected) : expected_(expected) {
    if (mode == ReplayOptions::Progress::kAuto) {
      mode = ::isatty(STDERR_FILENO) ? ReplayOptions::Progress::kBar : ReplayOptions::Progress::kLines;
    }
    mode_ = mode;
    started_ = last_ = SteadyClock::now();
  }

  // Called per record; prints at most every 200 ms (bar) or 5 s (lines).
  void Update(uint64_t events, int64_t position_ms) {
    if ((events & 1023) != 0 || mode_ == ReplayOptions::Progress::kNone) return;
    const auto now = SteadyClock::now();
    const auto every = mode_ == ReplayOptions::Progress::kBar ? std::chrono::milliseconds(200) : std::chrono::seconds(5);
    if (now - last_ < every) return;
    last_ = now;
    Print(events, position_ms, false);
  }

  void Finish(uint64_t events, int64_t position_ms) {
    if (mode_ == ReplayOptions::Progress::kNone) return;
    Print(events, position_ms, true);
  }

 private:
  void Print(uint64_t events, int64_t position_ms, bool done) {
    const double elapsed = std::chrono::duration<double>(SteadyClock::now() - started_).count();
    const double rate = elapsed > 0 ? double(events) / elapsed : 0;
    const double fraction = expected_ ? std::min(1.0, double(events) / double(expected_)) : 0;
    std::string eta = "?";
    if (done) {
      eta = "done";
    } else if (expected_ && rate > 0 && events < expected_) {
      eta = std::to_string(static_cast<int64_t>(double(expected_ - events) / rate)) + " s";
    }
    const std::string at = position_ms > 0 ? FormatRfc3339Ms(position_ms) : "-";
    if (mode_ == ReplayOptions::Progress::kBar) {
      constexpr int kWidth = 30;
      const int filled = static_cast<int>(fraction * kWidth);
      std::fprintf(stderr, "\r[%s%s] %3d%% %12llu events  at %s  %9.0f ev/s  ETA %s   %s",
                   std::string(filled, '#').c_str(), std::string(kWidth - filled, ' ').c_str(),
                   static_cast<int>(fraction * 100), static_cast<unsigned long long>(events), at.c_str(), rate,
                   eta.c_str(), done ? "\n" : "");
    } else {
      std::fprintf(stderr, "replay: %llu events (%d%%), at %s, %.0f events/s, ETA %s\n",
                   static_cast<unsigned long long>(events), static_cast<int>(fraction * 100), at.c_str(), rate,
                   eta.c_str());
    }
    std::fflush(stderr);
  }

  ReplayOptions::Progress mode_;
  uint64_t expected_;
  SteadyClock::time_point started_, last_;
};

// Holds the replay back to the log's pace at speed x real time.
class Pacer {
 public:
  explicit Pacer(double speed) : speed_(speed) {}
  // Whether the record at log time t_ms is due later than now (and so the
  // batch so far should be applied before waiting).
  bool MustWait(int64_t t_ms) {
    if (speed_ <= 0) return false;
    if (!started_) {
      started_ = true;
      first_ms_ = t_ms;
      wall_start_ = SteadyClock::now();
    }
    return SteadyClock::now() < Due(t_ms);
  }
  void WaitFor(int64_t t_ms, const std::atomic<bool>* stop) {
    const auto due = Due(t_ms);
    while (SteadyClock::now() < due && !(stop && stop->load())) {
      std::this_thread::sleep_until(std::min(due, SteadyClock::now() + std::chrono::milliseconds(100)));
    }
  }

 private:
  SteadyClock::time_point Due(int64_t t_ms) const {
    const double wall_ms = double(t_ms - first_ms_) / speed_;
    return wall_start_ + std::chrono::microseconds(static_cast<int64_t>(wall_ms * 1000));
  }
  double speed_;
  bool started_ = false;
  int64_t first_ms_ = 0;
  SteadyClock::time_point wall_start_;
};

// Feeds the pipeline and takes its output: digest, counts, outbox cleared.
class ReplayDriver {
 public:
  ReplayDriver(Pipeline* pipeline, storage::Store* store, ManualClock* clock, const std::string& dlq_topic)
      : pipeline_(pipeline), store_(store), clock_(clock), dlq_topic_(dlq_topic) {}

  // Also writes every output event to path as JSON lines.
  Status WriteEventsTo(const std::string& path) {
    events_.open(path, std::ios::binary | std::ios::trunc);
    return events_ ? Status::Ok() : Status::IoError("cannot write " + path);
  }
  Status Close() {
    if (!events_.is_open()) return Status::Ok();
    events_.close();
    return events_ ? Status::Ok() : Status::IoError("cannot write the events file");
  }

  void Add(ingest::Message&& m, int64_t ingest_ms) {
    batch_.push_back(std::move(m));
    times_.push_back(ingest_ms);
  }
  size_t pending() const { return batch_.size(); }

  Status Flush() {
    if (batch_.empty()) return Status::Ok();
    clock_->set_ms(times_.back());
    CL_RETURN_IF_ERROR(pipeline_->Process(batch_, &result_, times_));
    batch_.clear();
    times_.clear();
    return TakeOutput();
  }

  Status Tick(int64_t now_ms) {
    CL_RETURN_IF_ERROR(Flush());
    clock_->set_ms(now_ms);
    CL_RETURN_IF_ERROR(pipeline_->Tick(&result_));
    return TakeOutput();
  }

  const replay::OutputDigest& digest() const { return digest_; }
  uint64_t dead_letters() const { return dead_letters_; }

 private:
  Status TakeOutput() {
    if (result_.outbox.empty()) return Status::Ok();
    seqs_.clear();
    for (const storage::OutboxRecord& r : result_.outbox) {
      digest_.Add(r);
      if (events_.is_open()) events_ << replay::OutputEventJson(r).dump() << '\n';
      if (r.topic == dlq_topic_) ++dead_letters_;
      seqs_.push_back(r.seq);
    }
    result_.Clear();
    // Nothing publishes a replay's output: the outbox would only grow.
    return store_->DeleteOutbox(seqs_);
  }

  Pipeline* pipeline_;
  storage::Store* store_;
  ManualClock* clock_;
  std::string dlq_topic_;
  std::vector<ingest::Message> batch_;
  std::vector<int64_t> times_;
  BatchResult result_;
  std::vector<uint64_t> seqs_;
  replay::OutputDigest digest_;
  uint64_t dead_letters_ = 0;
  std::ofstream events_;
};

Status PrepareStore(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (fs::exists(path, ec) && !fs::is_empty(path, ec)) {
    return Status::FailedPrecondition("the replay store " + path +
                                      " is not empty: replay runs into a fresh store (remove it, or choose "
                                      "another --out or --store)");
  }
  return Status::Ok();
}

json SummaryJson(const ReplaySummary& s, const ReplayOptions& o) {
  json problems = json::array();
  for (const auto& p : s.problems) problems.push_back(p.ToString());
  return json{{"digest", s.digest},
              {"events_in", s.events_in},
              {"clock_advances", s.clock_advances},
              {"events_out", s.events_out},
              {"dead_letters", s.dead_letters},
              {"cases", s.output.cases},
              {"open_cases", s.output.open_cases},
              {"order", s.order},
              {"writer", s.writer},
              {"log", o.log_dir},
              {"config", o.config_path},
              {"first_ingest_time", s.first_ms ? FormatRfc3339Ms(s.first_ms) : ""},
              {"last_ingest_time", s.last_ms ? FormatRfc3339Ms(s.last_ms) : ""},
              {"out_of_order", s.out_of_order},
              {"problems", std::move(problems)},
              {"run", {{"seconds", s.seconds}, {"speed", o.speed}, {"batch", o.batch_size}}}};
}

}  // namespace

Result<ReplaySummary> RunReplay(std::shared_ptr<const CityModel> city, const ReplayOptions& o,
                                MetricsRegistry* metrics, const std::atomic<bool>* stop) {
  const auto started = SteadyClock::now();
  if (o.batch_size == 0) return Status::InvalidArgument("--batch must be at least 1");
  replay::LogReadOptions ro;
  ro.reorder_window_ms = o.reorder_window_ms;
  ro.topics = o.topics;
  ro.from_ms = o.from_ms;
  ro.to_ms = o.to_ms;
  // The order follows from who wrote the log (its manifest).
  auto writer = replay::LogWriterOf(o.log_dir);
  if (!writer.ok()) return writer.status();
  const bool engine_log = *writer == "engine";
  const bool by_log = o.order == ReplayOrder::kLog || (o.order == ReplayOrder::kAuto && engine_log);
  ro.order = by_log ? replay::LogOrder::kLog : replay::LogOrder::kTime;
  auto reader = replay::LogReader::Open(o.log_dir, ro);
  if (!reader.ok()) return reader.status();
  replay::LogReader& log = **reader;

  const std::string store_dir = o.store_dir.empty() ? o.out_dir + "/store" : o.store_dir;
  CL_RETURN_IF_ERROR(PrepareStore(store_dir));
  std::error_code ec;
  std::filesystem::create_directories(store_dir, ec);
  if (ec) return Status::IoError("cannot create " + store_dir + ": " + ec.message());
  auto store = storage::Store::Open(store_dir);
  if (!store.ok()) return store.status();

  // The recorded clock advances replay only in log order; a live-mode
  // pipeline then sees exactly what the live one saw.
  const bool live = by_log && log.info().has_clock;
  ManualClock clock(0);
  Pipeline pipeline(city, store->get(), clock, metrics, live);
  CL_RETURN_IF_ERROR(pipeline.Restore());
  ReplayDriver driver(&pipeline, store->get(), &clock, city->config().kafka.topics.dlq);
  if (o.write_events) CL_RETURN_IF_ERROR(driver.WriteEventsTo(o.out_dir + "/events.jsonl"));
  Pacer pacer(o.speed);
  ProgressMeter progress(o.progress, log.info().records);

  ReplaySummary s;
  s.order = by_log ? "log" : "time";
  s.writer = log.info().writer;
  int64_t now = std::numeric_limits<int64_t>::min();
  while (replay::LogRecord* r = log.Next()) {
    if (stop && stop->load()) break;
    // Ingest time: as the engine recorded it, else the Kafka timestamp, never
    // running backwards (a clock does not).
    const int64_t t = r->ingest_ms >= 0 ? r->ingest_ms : r->message.timestamp_ms;
    now = std::max(now, t);
    if (pacer.MustWait(now)) {
      CL_RETURN_IF_ERROR(driver.Flush());
      pacer.WaitFor(now, stop);
    }
    if (s.first_ms == 0) s.first_ms = now;
    s.last_ms = now;
    if (r->kind == replay::RecordKind::kClock) {
      if (live) CL_RETURN_IF_ERROR(driver.Tick(now));
      ++s.clock_advances;
      continue;
    }
    driver.Add(std::move(r->message), now);
    ++s.events_in;
    if (driver.pending() >= o.batch_size) CL_RETURN_IF_ERROR(driver.Flush());
    progress.Update(s.events_in, now);
  }
  CL_RETURN_IF_ERROR(driver.Flush());
  CL_RETURN_IF_ERROR(driver.Close());
  progress.Finish(s.events_in, s.last_ms);

  s.problems = log.problems();
  s.out_of_order = log.out_of_order();
  s.events_out = driver.digest().count();
  s.dead_letters = driver.dead_letters();
  s.digest = driver.digest().Hex();
  auto counts = replay::WriteRunOutput(**store, city->config(), o.out_dir);
  if (!counts.ok()) return counts.status();
  s.output = *counts;
  s.seconds = std::chrono::duration<double>(SteadyClock::now() - started).count();
  CL_RETURN_IF_ERROR(replay::WriteTextFile(o.out_dir + "/digest", s.digest + "\n"));
  CL_RETURN_IF_ERROR(replay::WriteTextFile(o.out_dir + "/summary.json", SummaryJson(s, o).dump(2) + "\n"));
  return s;
}

std::string FormatReplaySummary(const ReplaySummary& s, const ReplayOptions& o) {
  char line[512];
  std::string out;
  std::snprintf(line, sizeof line, "replayed %llu events (%llu clock advances) from %s in %s order",
                static_cast<unsigned long long>(s.events_in), static_cast<unsigned long long>(s.clock_advances),
                o.log_dir.c_str(), s.order.c_str());
  out += line;
  if (s.first_ms) out += ", " + FormatRfc3339Ms(s.first_ms) + " .. " + FormatRfc3339Ms(s.last_ms);
  std::snprintf(line, sizeof line, "\n  %.2f s (%.0f events/s); %llu cases (%llu open), %llu output events, %llu dead letters\n",
                s.seconds, s.seconds > 0 ? double(s.events_in) / s.seconds : 0.0,
                static_cast<unsigned long long>(s.output.cases), static_cast<unsigned long long>(s.output.open_cases),
                static_cast<unsigned long long>(s.events_out), static_cast<unsigned long long>(s.dead_letters));
  out += line;
  out += "  digest " + s.digest + "\n";
  out += "  output " + o.out_dir + "/{cases.jsonl,kpi.json,digest,summary.json}\n";
  if (s.out_of_order) out += "  " + std::to_string(s.out_of_order) + " records beyond the reorder window\n";
  if (!s.problems.empty()) {
    out += "  " + std::to_string(s.problems.size()) + " damaged stretches of the log skipped:\n";
    for (const auto& p : s.problems) out += "    " + p.ToString() + "\n";
  }
  return out;
}

}  // namespace cityloop::app
