#include "tests/support/crash_harness.h"

#include <dirent.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <sstream>
#include <thread>

#include "core/case_json.h"
#include "core/clock.h"
#include "core/config.h"
#include "ingest/offset_query.h"
#include "replay/run_output.h"
#include "storage/store.h"
#include "tests/support/pipeline_support.h"

namespace cityloop::testing {

using nlohmann::json;

std::string EditedExampleConfig(const std::vector<std::pair<std::string, std::string>>& edits) {
  std::string text = ReadFile(ExampleConfigPath());
  for (const auto& [from, to] : edits) {
    const size_t pos = text.find(from);
    EXPECT_NE(pos, std::string::npos) << "not in the example config: " << from;
    if (pos == std::string::npos) continue;
    EXPECT_EQ(text.find(from, pos + 1), std::string::npos) << "not unique in the example config: " << from;
    text.replace(pos, from.size(), to);
  }
  return text;
}

std::vector<std::pair<std::string, std::string>> CrashConfigEdits(int max_messages, int session_ms) {
  // A killed member leaves the group only when its session times out: keep that short.
  const std::string properties = "consumer_properties: {\"session.timeout.ms\": \"" + std::to_string(session_ms) +
                                 "\", \"heartbeat.interval.ms\": \"" + std::to_string(session_ms / 10) + "\"}";
  return {{"max_messages: 1000", "max_messages: " + std::to_string(max_messages)},
          {"consumer_properties: {}", properties}};
}

std::shared_ptr<const CityModel> LoadTestCity(const std::string& path) {
  ConfigLoadResult loaded = LoadConfigFile(path);
  EXPECT_TRUE(loaded.config) << path << ": " << (loaded.errors.empty() ? "" : loaded.errors[0].ToString());
  if (!loaded.config) return nullptr;
  auto city = CityModel::Build(*loaded.config);
  EXPECT_TRUE(city.ok()) << city.status().ToString();
  return city.ok() ? *city : nullptr;
}

// ---------------------------------------------------------------- input

int64_t ProduceSensorReadings(const std::string& bootstrap, std::shared_ptr<const CityModel> city,
                              const ProduceOptions& options) {
  std::atomic<int64_t> failed{0};
  ingest::ProducerOptions po;
  po.bootstrap = bootstrap;
  po.client_id = "fault-test-input";
  po.linger_ms = 20;
  po.properties = {{"compression.type", "lz4"}, {"queue.buffering.max.messages", "1000000"}};
  auto producer = ingest::KafkaProducer::Create(po, [&](uint64_t, const Status& st) {
    if (!st.ok()) ++failed;
  });
  EXPECT_TRUE(producer.ok()) << producer.status().ToString();
  if (!producer.ok()) return -1;
  const std::string& topic = city->config().kafka.topics.sensors;
  ingest::Simulator sim(city, options.sim);
  ingest::SimulatedReading r{};
  int64_t n = 0, skipped = 0;
  while ((options.limit == 0 || n < options.limit) && sim.Next(&r)) {
    if (r.topic != topic) continue;
    if (skipped < options.skip) {
      ++skipped;
      continue;
    }
    if (options.stop && options.stop->load()) break;
    if (options.paced) {
      // The input's pace: a reading goes out once its event time has come.
      while (!(options.stop && options.stop->load())) {
        const int64_t wait = r.ts_ms - SystemClock::instance().now_ms();
        if (wait <= 0) break;
        (*producer)->Poll(static_cast<int>(std::min<int64_t>(wait, 100)));
      }
    }
    Status st = (*producer)->Produce(topic, r.key, r.value, {}, 0, -1, r.ts_ms);
    EXPECT_TRUE(st.ok()) << st.ToString();
    if (!st.ok()) return -1;
    ++n;
    if (options.between) options.between(n, r, **producer);
    if (n % 1000 == 0) (*producer)->Poll(0);
  }
  Status flushed = (*producer)->Flush(120000);
  EXPECT_TRUE(flushed.ok()) << flushed.ToString();
  EXPECT_EQ(failed.load(), 0) << "input deliveries failed";
  return flushed.ok() && failed.load() == 0 ? n : -1;
}

int64_t StoredOffsetTotal(const std::string& store_path) {
  auto store = storage::Store::Open(store_path);
  EXPECT_TRUE(store.ok()) << store.status().ToString();
  if (!store.ok()) return -1;
  int64_t total = 0;
  for (const auto& [tp, next] : (*store)->AllOffsets()) total += next;
  return total;
}

int64_t TopicTotal(const std::string& bootstrap, const std::vector<std::string>& topics) {
  auto query = ingest::OffsetQuery::Create(bootstrap);
  EXPECT_TRUE(query.ok()) << query.status().ToString();
  if (!query.ok()) return -1;
  int64_t total = 0;
  for (const auto& topic : topics) {
    auto highs = (*query)->HighWatermarks(topic);
    EXPECT_TRUE(highs.ok()) << topic << ": " << highs.status().ToString();
    if (!highs.ok()) return -1;
    for (const auto& [p, h] : *highs) total += h;
  }
  return total;
}

// ---------------------------------------------------------------- checks

ExactlyOnce CheckRun(const std::string& bootstrap, const std::string& store_path,
                     const std::vector<std::string>& input_topics) {
  ExactlyOnce r;
  auto query = ingest::OffsetQuery::Create(bootstrap);
  EXPECT_TRUE(query.ok()) << query.status().ToString();
  auto store = storage::Store::Open(store_path);
  EXPECT_TRUE(store.ok()) << store.status().ToString();
  if (!query.ok() || !store.ok()) return r;
  // Every input applied: the stored offsets reach the end of every partition.
  for (const auto& topic : input_topics) {
    auto highs = (*query)->HighWatermarks(topic);
    EXPECT_TRUE(highs.ok()) << topic;
    if (!highs.ok()) continue;
    for (const auto& [p, high] : *highs) {
      const int64_t next = (*store)->GetOffset({topic, p}).value_or(0);
      r.inputs += high;
      r.unapplied += std::max<int64_t>(0, high - next);
      r.beyond_end += std::max<int64_t>(0, next - high);
    }
  }
  // Each signal, and each input, at most once in a case.
  EXPECT_TRUE((*store)
                  ->ForEachCase([&](std::string_view id, std::string_view text) {
                    auto c = ParseCaseJson(text);
                    EXPECT_TRUE(c.ok()) << id;
                    if (c.ok()) r.cases[std::string(id)] = *c;
                    return true;
                  })
                  .ok());
  for (const auto& [id, c] : r.cases) {
    std::set<std::string> sig_ids, inputs;
    for (const auto& s : c.signals) {
      r.signals_twice += !sig_ids.insert(s.id).second;
      // A correlation's signal names the input of the member that completed it.
      if (s.source == SignalSource::kCorrelation) continue;
      r.inputs_twice += !inputs.insert(s.input.ToString()).second;
    }
  }
  EXPECT_TRUE((*store)
                  ->ForEachOutbox([&](const storage::OutboxRecord&) {
                    ++r.outbox_left;
                    return true;
                  })
                  .ok());
  // Output may repeat, but only as the same event: same id, same content.
  for (const char* topic : {"cityloop.cases", "cityloop.dispatch"}) {
    std::map<std::string, std::string> by_id;
    std::set<std::string> subjects;
    for (const auto& e : ParseValues(ReadTopic(bootstrap, topic))) {
      ++r.outputs;
      const std::string id = e["id"].get<std::string>();
      auto [it, fresh] = by_id.emplace(id, e.dump());
      if (!fresh) ++(it->second == e.dump() ? r.repeats : r.conflicts);
      subjects.insert(e["subject"].get<std::string>());
    }
    // Every case is on cityloop.cases; the dispatched ones on cityloop.dispatch.
    std::set<std::string> case_ids;
    for (const auto& [id, c] : r.cases) {
      if (std::string(topic) == "cityloop.cases" || c.dispatched_ms != 0) case_ids.insert(id);
    }
    for (const auto& id : case_ids) r.missing_subjects += !subjects.count(id);
    for (const auto& id : subjects) r.unexpected_subjects += !case_ids.count(id);
  }
  return r;
}

void ExpectExactlyOnce(const ExactlyOnce& r) {
  EXPECT_GT(r.inputs, 0);
  EXPECT_EQ(r.unapplied, 0) << "inputs never applied";
  EXPECT_EQ(r.beyond_end, 0);
  EXPECT_EQ(r.signals_twice, 0) << "a case holds a signal twice";
  EXPECT_EQ(r.inputs_twice, 0) << "a case applied an input twice";
  EXPECT_EQ(r.outbox_left, 0) << "outbox records never acknowledged";
  EXPECT_EQ(r.conflicts, 0) << "an event id repeated with other content";
  EXPECT_EQ(r.missing_subjects, 0) << "a case missing from its output topic";
  EXPECT_EQ(r.unexpected_subjects, 0) << "output about a case the store does not have";
}

// ---------------------------------------------------------------- oracle

namespace {

// The fields a live run takes from its clock rather than from the input.
void DropIngestTimes(json& j) {
  if (j.is_object()) {
    j.erase("ingest");
    j.erase("first_ingest");
    for (auto& [k, v] : j.items()) DropIngestTimes(v);
  } else if (j.is_array()) {
    for (auto& v : j) DropIngestTimes(v);
  }
}

std::vector<std::string> Lines(const std::string& path) {
  std::vector<std::string> out;
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) out.push_back(line);
  }
  return out;
}

json ParsedLine(const std::string& line) {
  json j = json::parse(line, nullptr, false);
  EXPECT_FALSE(j.is_discarded()) << line.substr(0, 300);
  return j;
}

std::string CanonicalLine(const std::string& line) {
  json j = ParsedLine(line);
  DropIngestTimes(j);
  return j.dump();
}

// An output event ({topic, key, headers, value}) as compared: ingest times
// dropped, and for kUpToInterleaving the sequence number of a case event's
// id ("CL-…:7" -> "CL-…:*").
class EventCanon {
 public:
  explicit EventCanon(OracleMatch match) : match_(match) {}
  void Add(json j) {
    DropIngestTimes(j);
    if (match_ == OracleMatch::kUpToInterleaving) {
      json& v = j["value"];
      if (v.is_object() && v.contains("id") && v.contains("subject") && v["id"].is_string() &&
          v["subject"].is_string()) {
        const std::string subject = v["subject"].get<std::string>();
        if (v["id"].get<std::string>().rfind(subject + ":", 0) == 0) v["id"] = subject + ":*";
      }
    }
    std::string line = j.dump();
    // Without the sequence numbers two events can be equal: number them.
    if (match_ == OracleMatch::kUpToInterleaving) line += "#" + std::to_string(++seen_[line]);
    out_.insert(std::move(line));
  }
  std::set<std::string> Take() { return std::move(out_); }

 private:
  OracleMatch match_;
  std::map<std::string, int> seen_;
  std::set<std::string> out_;
};

}  // namespace

std::set<std::string> CanonicalOutputs(const std::vector<ingest::Message>& messages, OracleMatch match) {
  EventCanon canon(match);
  for (const auto& m : messages) canon.Add(replay::OutputEventJson({0, m.topic, m.key, m.value, m.headers}));
  return canon.Take();
}

std::set<std::string> CanonicalEventsFile(const std::string& path, OracleMatch match) {
  EventCanon canon(match);
  for (const auto& line : Lines(path)) canon.Add(ParsedLine(line));
  return canon.Take();
}

std::vector<std::string> CanonicalCasesFile(const std::string& path) {
  std::vector<std::string> out;
  for (const auto& line : Lines(path)) out.push_back(CanonicalLine(line));
  return out;
}

std::string SetDigest(const std::set<std::string>& lines) {
  replay::OutputDigest digest;
  for (const auto& line : lines) {
    digest.Add(storage::OutboxRecord{0, "set", "", line, {}});
  }
  return digest.Hex();
}

OracleComparison CompareWithReplay(const TempDir& dir, const std::string& config, const std::string& bootstrap,
                                   const std::string& store_path, const std::string& tag, OracleMatch match) {
  OracleComparison c;
  const std::string bin = CityloopBinary();
  const std::string oracle = dir.file(tag + "-oracle"), exported = dir.file(tag + "-export");
  std::string out;
  // One partition: its log order is the order the run applied it in. Several:
  // the run read them about as they were produced, paced, so in time order;
  // the order the replay's spooling consumer read them in is another one.
  const char* order = match == OracleMatch::kExact ? "log" : "time";
  const int replayed = RunCommand({bin, "replay", "--config", config, "--bootstrap", bootstrap, "--order", order,
                                   "--events", "--progress", "none", "--out", oracle},
                                  &out);
  EXPECT_EQ(replayed, 0) << out;
  const int exported_rc =
      RunCommand({bin, "export", "--config", config, "--store", store_path, "--out", exported}, &out);
  EXPECT_EQ(exported_rc, 0) << out;
  if (replayed != 0 || exported_rc != 0) return c;
  c.ran = true;
  std::vector<ingest::Message> outputs;
  for (const char* topic : {"cityloop.cases", "cityloop.dispatch", "cityloop.dlq"}) {
    auto part = ReadTopic(bootstrap, topic);
    outputs.insert(outputs.end(), part.begin(), part.end());
  }
  const std::set<std::string> run = CanonicalOutputs(outputs, match);
  const std::set<std::string> expected = CanonicalEventsFile(oracle + "/events.jsonl", match);
  c.outputs = run.size();
  c.oracle_outputs = expected.size();
  for (const auto& e : expected) {
    if (run.count(e)) continue;
    if (c.missing++ == 0) c.first_difference = "missing from the run: " + e.substr(0, 1500);
  }
  for (const auto& e : run) {
    if (expected.count(e)) continue;
    // Both sides of the first difference: often one event with other content.
    if (c.extra++ == 0) {
      if (!c.first_difference.empty()) c.first_difference += "\n";
      c.first_difference += "not in the replay: " + e.substr(0, 1500);
    }
  }
  c.digest = SetDigest(run);
  c.oracle_digest = SetDigest(expected);
  const auto live_cases = CanonicalCasesFile(exported + "/cases.jsonl");
  const auto oracle_cases = CanonicalCasesFile(oracle + "/cases.jsonl");
  c.cases = live_cases.size();
  c.cases_equal = live_cases == oracle_cases;
  if (!c.cases_equal && c.first_difference.empty()) {
    for (size_t i = 0; i < std::max(live_cases.size(), oracle_cases.size()); ++i) {
      const std::string a = i < live_cases.size() ? live_cases[i] : "<none>";
      const std::string b = i < oracle_cases.size() ? oracle_cases[i] : "<none>";
      if (a == b) continue;
      c.first_difference =
          "case line " + std::to_string(i + 1) + ": run " + a.substr(0, 400) + "\n  replay " + b.substr(0, 400);
      break;
    }
  }
  return c;
}

// ---------------------------------------------------------------- /proc

int64_t ProcessRssKb(int pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stoll(line.substr(6));
  }
  return -1;
}

OpenFds ProcessOpenFds(int pid, const std::string& apart) {
  OpenFds fds;
  std::error_code ec;
  auto it = std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd", ec);
  if (ec) return fds;
  fds.others = 0;
  for (; it != std::filesystem::directory_iterator(); it.increment(ec)) {
    if (ec) break;
    std::error_code link_ec;
    const bool on_apart = std::filesystem::read_symlink(it->path(), link_ec).string().ends_with(apart) && !link_ec;
    ++(on_apart ? fds.apart : fds.others);
  }
  return fds;
}

int64_t DirectoryBytes(const std::string& path) {
  int64_t total = 0;
  std::error_code ec;
  for (auto it = std::filesystem::recursive_directory_iterator(path, ec);
       !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    std::error_code size_ec;
    if (it->is_regular_file(size_ec)) total += static_cast<int64_t>(it->file_size(size_ec));
  }
  return total;
}

}  // namespace cityloop::testing
