// record, replay, diff and export: the subcommands around replay logs.
#include <spdlog/spdlog.h>

#include <charconv>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include "app/command_support.h"
#include "app/commands.h"
#include "app/replay_run.h"
#include "core/metrics.h"
#include "core/time_util.h"
#include "replay/kafka_recorder.h"
#include "replay/run_diff.h"
#include "replay/run_output.h"
#include "storage/store.h"

namespace cityloop::app {
namespace {

// RFC 3339 or epoch milliseconds.
std::optional<int64_t> ParseTimeArg(const std::string& text) {
  int64_t ms = 0;
  auto r = std::from_chars(text.data(), text.data() + text.size(), ms);
  if (r.ec == std::errc() && r.ptr == text.data() + text.size()) return ms;
  return ParseRfc3339Ms(text);
}

// A time flag, when given, into *slot (an int64_t or an optional one); false,
// saying why, when its text is not a time.
template <typename Slot>
bool ParseTimeFlag(const char* flag, const std::string& text, Slot* slot) {
  if (text.empty()) return true;
  auto ms = ParseTimeArg(text);
  if (!ms) {
    std::cerr << flag << ": '" << text << "' is neither RFC 3339 nor epoch milliseconds\n";
    return false;
  }
  *slot = *ms;
  return true;
}

std::vector<std::string> SplitComma(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream in(s);
  std::string item;
  while (std::getline(in, item, ',')) {
    if (!item.empty()) out.push_back(item);
  }
  return out;
}

std::vector<std::string> InputTopics(const Config& c) {
  const auto& t = c.kafka.topics;
  return {t.sensors, t.camera_frames, t.camera_detections, t.reports, t.units, t.commands};
}

// Builds a KafkaRange from the flags, or prints why not.
std::optional<replay::KafkaRange> MakeRange(const KafkaRangeArgs& a, const Config& config, bool until_caught_up) {
  replay::KafkaRange range;
  range.bootstrap = a.bootstrap.empty() ? config.kafka.bootstrap : a.bootstrap;
  range.properties = config.kafka.ConsumerProperties();
  range.topics = a.topics.empty() ? InputTopics(config) : SplitComma(a.topics);
  range.until_caught_up = until_caught_up;
  if (!a.from_offsets.empty()) {
    auto offsets = replay::ParseOffsetSpec(a.from_offsets);
    if (!offsets.ok()) {
      std::cerr << "--from-offsets: " << offsets.status().message() << "\n";
      return std::nullopt;
    }
    range.from_offsets = *offsets;
  }
  if (!ParseTimeFlag("--from-time", a.from_time, &range.from_ms) ||
      !ParseTimeFlag("--to-time", a.to_time, &range.to_ms)) {
    return std::nullopt;
  }
  return range;
}

// Records range into log_dir; prints what it did. Returns an exit code.
int Record(const replay::KafkaRange& range, const std::string& log_dir, uint64_t segment_mb,
           const std::atomic<bool>& stop) {
  replay::LogWriterOptions wo;
  wo.segment_bytes = segment_mb << 20;
  wo.writer = "record";
  auto writer = replay::LogWriter::Open(log_dir, wo);
  if (!writer.ok()) {
    spdlog::error("{}: {}", log_dir, writer.status().ToString());
    return kExitRuntime;
  }
  for (const auto& p : (*writer)->repairs()) spdlog::warn("log repaired: {}", p.ToString());
  auto stats = replay::RecordFromKafka(range, writer->get(), &stop);
  Status closed = (*writer)->Close();
  if (!stats.ok() || !closed.ok()) {
    spdlog::error("recording failed: {}", (!stats.ok() ? stats.status() : closed).ToString());
    return kExitRuntime;
  }
  if (stats->scanned_for_time) spdlog::info("the broker cannot look offsets up by time: found them by a scan");
  std::cerr << "recorded " << stats->records << " records into " << log_dir << "\n";
  for (const auto& [tp, r] : stats->partitions) {
    std::cerr << "  " << tp.topic << "/" << tp.partition << ": offsets " << r.from << ".." << r.to - 1 << "\n";
  }
  return kExitOk;
}

}  // namespace

int RecordCommand(const RecordArgs& args, const std::atomic<bool>& stop) {
  auto city = LoadCity(args.config);
  if (!city) return kExitUsage;
  auto range = MakeRange(args.range, city->config(), args.until_caught_up);
  if (!range) return kExitUsage;
  if (args.segment_mb == 0) {
    std::cerr << "--segment-mb must be at least 1\n";
    return kExitUsage;
  }
  return Record(*range, args.out, args.segment_mb, stop);
}

int ReplayCommand(const ReplayArgs& args, const std::atomic<bool>& stop) {
  auto city = LoadCity(args.config);
  if (!city) return kExitUsage;
  ReplayOptions o;
  o.config_path = args.config;
  o.out_dir = args.out;
  o.store_dir = args.store;
  o.batch_size = args.batch;
  o.write_events = args.events;
  if (args.speed == "max") {
    o.speed = 0;
  } else {
    char* end = nullptr;
    o.speed = std::strtod(args.speed.c_str(), &end);
    if (end == args.speed.c_str() || *end != '\0' || !(o.speed > 0)) {
      std::cerr << "--speed: expected max, 1 (real time) or a factor N > 0, got '" << args.speed << "'\n";
      return kExitUsage;
    }
  }
  static const std::map<std::string, ReplayOrder> kOrders = {
      {"auto", ReplayOrder::kAuto}, {"log", ReplayOrder::kLog}, {"time", ReplayOrder::kTime}};
  o.order = kOrders.at(args.order);
  static const std::map<std::string, ReplayOptions::Progress> kProgress = {
      {"auto", ReplayOptions::Progress::kAuto},
      {"bar", ReplayOptions::Progress::kBar},
      {"lines", ReplayOptions::Progress::kLines},
      {"none", ReplayOptions::Progress::kNone}};
  o.progress = kProgress.at(args.progress);
  auto window = ParseDurationMs(args.reorder_window);
  if (!window || *window < 0) {
    std::cerr << "--reorder-window: bad duration '" << args.reorder_window << "'\n";
    return kExitUsage;
  }
  o.reorder_window_ms = *window;
  if (!ParseTimeFlag("--from", args.from, &o.from_ms) || !ParseTimeFlag("--to", args.to, &o.to_ms)) return kExitUsage;
  const bool from_kafka = !args.range.bootstrap.empty();
  if (from_kafka == !args.log.empty()) {
    std::cerr << "replay needs exactly one source: --log LOG, or --bootstrap with --from-offsets/--from-time\n";
    return kExitUsage;
  }
  o.log_dir = args.log;
  if (!from_kafka) o.topics = SplitComma(args.range.topics);  // a log: replay only these topics
  if (from_kafka) {
    // The range is spooled into a log first: the same reader, ordering and
    // corruption handling as any log, and a record of what was replayed.
    auto range = MakeRange(args.range, city->config(), /*until_caught_up=*/true);
    if (!range) return kExitUsage;
    o.log_dir = args.out + "/log";
    if (std::filesystem::exists(o.log_dir)) {
      std::cerr << o.log_dir << " exists: replay from Kafka spools into a fresh <out>/log\n";
      return kExitUsage;
    }
    if (int rc = Record(*range, o.log_dir, 64, stop); rc != kExitOk) return rc;
  }
  if (!from_kafka && !std::filesystem::exists(args.log + "/manifest.json")) {
    std::cerr << "--log " << args.log << ": not a replay log (no manifest.json)\n";
    return kExitUsage;
  }
  spdlog::set_level(std::max(spdlog::get_level(), spdlog::level::warn));  // no line per case
  MetricsRegistry metrics;
  auto summary = RunReplay(city, o, &metrics, &stop);
  if (!summary.ok()) {
    spdlog::error("replay failed: {}", summary.status().ToString());
    return summary.status().code() == StatusCode::kFailedPrecondition ? kExitUsage : kExitRuntime;
  }
  std::cout << FormatReplaySummary(*summary, o) << std::flush;
  return kExitOk;
}

int DiffCommand(const DiffArgs& args) {
  auto diff = replay::DiffRuns(args.dir_a, args.dir_b);
  if (!diff.ok()) {
    std::cerr << "diff: " << diff.status().message() << "\n";
    return kExitUsage;
  }
  replay::DiffOptions options;
  options.max_listed = args.max_listed;
  if (args.json == "-") {
    std::cout << diff->dump(2) << "\n";
  } else {
    std::cout << replay::FormatDiffText(*diff, options);
    if (!args.json.empty()) {
      Status st = replay::WriteTextFile(args.json, diff->dump(2) + "\n");
      if (!st.ok()) {
        std::cerr << st.message() << "\n";
        return kExitUsage;
      }
    }
  }
  return diff->value("match", false) ? kExitOk : kExitRuntime;
}

int ExportCommand(const ExportArgs& args) {
  auto city = LoadCity(args.config);
  if (!city) return kExitUsage;
  storage::StoreOptions so;
  so.create_if_missing = false;
  auto store = storage::Store::Open(args.store, so);
  if (!store.ok()) {
    std::cerr << "--store " << args.store << ": " << store.status().message() << "\n";
    return kExitRuntime;
  }
  auto counts = replay::WriteRunOutput(**store, city->config(), args.out);
  if (!counts.ok()) {
    std::cerr << counts.status().message() << "\n";
    return kExitRuntime;
  }
  std::cout << "exported " << counts->cases << " cases (" << counts->open_cases << " open) to " << args.out
            << "/{cases.jsonl,kpi.json}\n";
  return kExitOk;
}

}  // namespace cityloop::app
