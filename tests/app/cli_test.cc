// The cityloop binary as users drive it: exit codes (0 ok, 2 bad usage or
// bad config, 1 runtime failure), config errors as FILE:LINE: KEY: MESSAGE,
// the broker's bootstrap announcement and SIGTERM handling, JSON logs, and a
// short fast simulation whose output kcat can read.
#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "tests/support/test_support.h"

namespace cityloop {
namespace {

using nlohmann::json;
using testing::CityloopBinary;
using testing::ReadFile;
using testing::RunCommand;
using testing::TempDir;
using testing::WaitFor;
using testing::WriteFile;

std::string ShellQuote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) lines.push_back(line);
  }
  return lines;
}

bool Contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

// Runs the binary with args, stdout and stderr kept apart; returns the exit code.
struct Output {
  int code = -1;
  std::string out;
  std::string err;
};
Output Cityloop(const TempDir& dir, const std::vector<std::string>& args, const std::string& cwd = "") {
  std::string cmd = cwd.empty() ? "" : "cd " + ShellQuote(cwd) + " && ";
  cmd += "exec " + ShellQuote(CityloopBinary());
  for (const auto& a : args) cmd += " " + ShellQuote(a);
  cmd += " >" + ShellQuote(dir.file("cmd.out")) + " 2>" + ShellQuote(dir.file("cmd.err")) + " </dev/null";
  Output o;
  o.code = RunCommand({"/bin/sh", "-c", cmd}, nullptr);
  o.out = ReadFile(dir.file("cmd.out"));
  o.err = ReadFile(dir.file("cmd.err"));
  return o;
}

std::string Example() { return ReadFile(testing::ExampleConfigPath()); }

// The example config with `from` (which must occur exactly once) replaced by
// `to`; *line is the 1-based line of the replacement plus line_offset.
std::string Mutate(std::string text, const std::string& from, const std::string& to, int line_offset, int* line) {
  const size_t pos = text.find(from);
  EXPECT_NE(pos, std::string::npos) << "not in the example config: " << from;
  if (pos == std::string::npos) return text;
  EXPECT_EQ(text.find(from, pos + 1), std::string::npos) << "not unique in the example config: " << from;
  *line = 1 + static_cast<int>(std::count(text.begin(), text.begin() + static_cast<std::ptrdiff_t>(pos), '\n')) +
          line_offset;
  text.replace(pos, from.size(), to);
  return text;
}

// ---------------------------------------------------------------------------
// Usage and help

TEST(Cli, ValidatesTheExampleConfig) {
  TempDir dir;
  Output o = Cityloop(dir, {"validate", "--config", "deploy/cityloop.example.yaml"}, testing::ProjectRoot());
  EXPECT_EQ(o.code, 0) << o.out << o.err;
  EXPECT_EQ(o.out.rfind("ok:", 0), 0u) << o.out;
  EXPECT_TRUE(Contains(o.out, "deploy/cityloop.example.yaml")) << o.out;
}

TEST(Cli, HelpExitsZero) {
  TempDir dir;
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"--help"}, {"run", "--help"}, {"validate", "--help"}, {"broker", "--help"},
        {"simulate", "--help"}, {"record", "--help"}, {"replay", "--help"}, {"diff", "--help"},
        {"export", "--help"}}) {
    Output o = Cityloop(dir, args);
    EXPECT_EQ(o.code, 0) << args[0] << ": " << o.out << o.err;
    EXPECT_TRUE(Contains(o.out, "Usage")) << o.out;
  }
  Output run_help = Cityloop(dir, {"run", "--help"});
  EXPECT_TRUE(Contains(run_help.out, "--config")) << run_help.out;
}

TEST(Cli, BadUsageExitsTwo) {
  TempDir dir;
  Output none = Cityloop(dir, {});
  EXPECT_EQ(none.code, 2) << none.out << none.err;
  Output unknown = Cityloop(dir, {"frobnicate"});
  EXPECT_EQ(unknown.code, 2) << unknown.out << unknown.err;
  EXPECT_FALSE(unknown.err.empty());
  Output unknown_flag = Cityloop(dir, {"validate", "--config", testing::ExampleConfigPath(), "--frobnicate"});
  EXPECT_EQ(unknown_flag.code, 2) << unknown_flag.out << unknown_flag.err;
  Output no_config = Cityloop(dir, {"run"});
  EXPECT_EQ(no_config.code, 2) << no_config.out << no_config.err;
  EXPECT_TRUE(Contains(no_config.err, "--config")) << no_config.err;
  Output bad_log_format = Cityloop(dir, {"--log-format", "xml", "validate", "--config", testing::ExampleConfigPath()});
  EXPECT_EQ(bad_log_format.code, 2) << bad_log_format.out << bad_log_format.err;
}

// record / replay / diff refuse bad flags with exit 2 and say which flag.
TEST(Cli, ReplayCommandsRefuseBadUsage) {
  TempDir dir;
  const std::string config = testing::ExampleConfigPath();
  const std::string golden = testing::ProjectRoot() + "/tests/data/replay/golden";
  struct Case {
    std::vector<std::string> args;
    std::string says;
  };
  for (const Case& c : std::vector<Case>{
           {{"replay", "--config", config, "--out", dir.file("o1")}, "exactly one source"},
           {{"replay", "--config", config, "--log", golden, "--out", dir.file("o2"), "--speed", "fast"}, "--speed"},
           {{"replay", "--config", config, "--log", golden, "--out", dir.file("o3"), "--speed", "0"}, "--speed"},
           {{"replay", "--config", config, "--log", golden, "--out", dir.file("o4"), "--from", "yesterday"}, "--from"},
           {{"replay", "--config", config, "--log", golden, "--out", dir.file("o5"), "--reorder-window", "x"},
            "--reorder-window"},
           {{"replay", "--config", config, "--log", dir.path(), "--out", dir.file("o6")}, "not a replay log"},
           {{"record", "--config", config, "--out", dir.file("l"), "--from-offsets", "city.sensors=5"},
            "TOPIC:PARTITION=OFFSET"},
           {{"record", "--config", config, "--out", dir.file("l"), "--from-time", "soon"}, "--from-time"},
           {{"diff", dir.file("nowhere"), dir.file("nor-here")}, "nowhere"},
       }) {
    Output o = Cityloop(dir, c.args);
    EXPECT_EQ(o.code, 2) << c.args[0] << " " << c.args.back() << ": " << o.out << o.err;
    EXPECT_TRUE(Contains(o.err, c.says)) << c.says << " not in: " << o.err;
  }
}

// Replaying into an output that already holds a store would mix two runs.
TEST(Cli, ReplayRefusesAStoreThatIsNotFresh) {
  TempDir dir;
  const std::vector<std::string> args = {"replay", "--config", testing::ExampleConfigPath(), "--log",
                                         testing::ProjectRoot() + "/tests/data/replay/golden", "--out",
                                         dir.file("out"), "--progress", "lines"};
  Output first = Cityloop(dir, args);
  ASSERT_EQ(first.code, 0) << first.out << first.err;
  EXPECT_TRUE(Contains(first.out, "replayed 9078 events")) << first.out;
  EXPECT_TRUE(Contains(first.err, "replay: 9078 events (100%)")) << first.err;  // plain progress lines
  Output again = Cityloop(dir, args);
  EXPECT_EQ(again.code, 2) << again.out << again.err;
  EXPECT_TRUE(Contains(again.err, "fresh store")) << again.err;
}

TEST(Cli, SimulateFastNeedsADuration) {
  TempDir dir;
  // A bootstrap nobody listens on: the usage check must come first.
  Output o = Cityloop(dir, {"--log-format", "json", "simulate", "--bootstrap", "127.0.0.1:1", "--config", testing::ExampleConfigPath(),
                            "--fast"});
  EXPECT_EQ(o.code, 2) << o.out << o.err;
  EXPECT_TRUE(Contains(o.err, "--duration")) << o.err;
  Output rate = Cityloop(dir, {"simulate", "--bootstrap", "127.0.0.1:1", "--config", testing::ExampleConfigPath(),
                               "--fast", "--duration", "60", "--rate", "0"});
  EXPECT_EQ(rate.code, 2) << rate.out << rate.err;
  Output start = Cityloop(dir, {"simulate", "--bootstrap", "127.0.0.1:1", "--config", testing::ExampleConfigPath(),
                                "--fast", "--duration", "60", "--start", "yesterday"});
  EXPECT_EQ(start.code, 2) << start.out << start.err;
  EXPECT_TRUE(Contains(start.err, "--start")) << start.err;
}

// ---------------------------------------------------------------------------
// Config errors: FILE:LINE: KEY: MESSAGE, exit 2

struct BadConfig {
  std::string name;
  std::string from, to;
  int line_offset;
  std::string key;  // "" for a YAML syntax error (no key)
};

std::vector<BadConfig> BadConfigs() {
  return {
      {"yaml syntax error", "  client_id: cityloop\n", "  client_id: a: b\n", 0, ""},
      {"unknown key", "  sync: false ", "  sync: false\n  colour: blue\n ", 1, "storage.colour"},
      {"wrong type", "  partitions: 4 ", "  partitions: four ", 0, "kafka.partitions"},
      {"bad duration", "max_wait: 20ms", "max_wait: 20 parsecs", 0, "kafka.batch.max_wait"},
      {"unknown department", "department: drainage, priority: high}", "department: plumbing, priority: high}", 0,
       "city.catalogue[0].department"},
      {"device outside the grid", "{id: wl-0001, kind: water_level, lat: 28.172,",
       "{id: wl-0001, kind: water_level, lat: 28.5,", 0, "city.devices[0].lat"},
  };
}

TEST(Cli, EachBadConfigIsReportedWithFileLineAndKey) {
  TempDir dir;
  for (const BadConfig& bad : BadConfigs()) {
    SCOPED_TRACE(bad.name);
    int line = 0;
    const std::string path = dir.file("bad.yaml");
    WriteFile(path, Mutate(Example(), bad.from, bad.to, bad.line_offset, &line));
    Output o = Cityloop(dir, {"validate", "--config", path});
    EXPECT_EQ(o.code, 2) << o.out << o.err;
    const std::string where = path + ":" + std::to_string(line) + ": ";
    if (bad.key.empty()) {
      EXPECT_TRUE(Contains(o.err, where + "YAML syntax error")) << "want " << where << "YAML syntax error\n" << o.err;
    } else {
      EXPECT_TRUE(Contains(o.err, where + bad.key + ": ")) << "want " << where << bad.key << ":\n" << o.err;
    }
    EXPECT_FALSE(Contains(o.out, "ok:")) << o.out;
  }
}

TEST(Cli, EveryErrorOfAConfigIsPrinted) {
  TempDir dir;
  int type_line = 0, grid_line = 0;
  std::string text = Mutate(Example(), "  partitions: 4 ", "  partitions: four ", 0, &type_line);
  text = Mutate(text, "{id: wl-0001, kind: water_level, lat: 28.172,", "{id: wl-0001, kind: water_level, lat: 28.5,",
                0, &grid_line);
  const std::string path = dir.file("two.yaml");
  WriteFile(path, text);
  Output o = Cityloop(dir, {"validate", "--config", path});
  EXPECT_EQ(o.code, 2) << o.out << o.err;
  const std::string first = path + ":" + std::to_string(type_line) + ": kafka.partitions: ";
  const std::string second = path + ":" + std::to_string(grid_line) + ": city.devices[0].lat: ";
  EXPECT_TRUE(Contains(o.err, first)) << o.err;
  EXPECT_TRUE(Contains(o.err, second)) << o.err;
  EXPECT_LT(o.err.find(first), o.err.find(second)) << "errors are listed in file order\n" << o.err;
}

TEST(Cli, MissingConfigFileExitsTwo) {
  TempDir dir;
  const std::string path = dir.file("does-not-exist.yaml");
  Output o = Cityloop(dir, {"validate", "--config", path});
  EXPECT_EQ(o.code, 2) << o.out << o.err;
  EXPECT_TRUE(Contains(o.err, path)) << o.err;
}

TEST(Cli, RunRefusesABadConfigBeforeTouchingKafka) {
  TempDir dir;
  int line = 0;
  std::string text = Mutate(Example(), "  partitions: 4 ", "  partitions: four ", 0, &line);
  // Nothing listens here; a run that got as far as Kafka would hang or fail with 1, not 2.
  int unused = 0;
  text = Mutate(text, "bootstrap: \"127.0.0.1:9092\"", "bootstrap: \"127.0.0.1:1\"", 0, &unused);
  const std::string path = dir.file("bad.yaml");
  WriteFile(path, text);
  const auto started = std::chrono::steady_clock::now();
  Output o = Cityloop(dir, {"run", "--config", path, "--store", dir.file("store")});
  EXPECT_EQ(o.code, 2) << o.out << o.err;
  EXPECT_TRUE(Contains(o.err, path + ":" + std::to_string(line) + ": kafka.partitions: ")) << o.err;
  Output embedded = Cityloop(dir, {"run", "--config", path, "--embedded-kafka", "--store", dir.file("store")});
  EXPECT_EQ(embedded.code, 2) << embedded.out << embedded.err;
  EXPECT_FALSE(Contains(embedded.out, "bootstrap:")) << "started a broker for a bad config: " << embedded.out;
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(20));
  EXPECT_FALSE(std::ifstream(dir.file("store") + "/CURRENT").good()) << "opened the store for a bad config";
}

// ---------------------------------------------------------------------------
// broker, logs, simulate, kcat

// `cityloop [pre...] broker --bootstrap-file F` as a child, stdout and stderr to files.
class BrokerProcess {
 public:
  BrokerProcess(const TempDir& dir, const std::vector<std::string>& pre = {})
      : out_(dir.file("broker.out")), err_(dir.file("broker.err")), file_(dir.file("bootstrap.txt")) {
    std::string cmd = "exec " + ShellQuote(CityloopBinary());
    for (const auto& a : pre) cmd += " " + ShellQuote(a);
    cmd += " broker --bootstrap-file " + ShellQuote(file_) + " >" + ShellQuote(out_) + " 2>" + ShellQuote(err_);
    child_ = std::make_unique<testing::ChildProcess>(std::vector<std::string>{"/bin/sh", "-c", cmd},
                                                     dir.file("broker.log"));
  }
  // Waits for the bootstrap file; returns its address ("" on timeout).
  std::string WaitForBootstrap() {
    if (!WaitFor([&] { return !Lines(ReadFile(file_)).empty() || !child_->Running(); })) return "";
    auto lines = Lines(ReadFile(file_));
    return lines.empty() ? "" : lines[0];
  }
  testing::ChildProcess& child() { return *child_; }
  std::string out() const { return ReadFile(out_); }
  std::string err() const { return ReadFile(err_); }
  const std::string& file() const { return file_; }

 private:
  std::string out_, err_, file_;
  std::unique_ptr<testing::ChildProcess> child_;
};

TEST(Cli, BrokerAnnouncesItsBootstrapAndExitsZeroOnSigterm) {
  TempDir dir;
  BrokerProcess broker(dir);
  const std::string bootstrap = broker.WaitForBootstrap();
  ASSERT_FALSE(bootstrap.empty()) << "no bootstrap file; stderr: " << broker.err();
  EXPECT_TRUE(std::regex_match(bootstrap, std::regex(R"(127\.0\.0\.1:[0-9]{1,5})"))) << bootstrap;
  EXPECT_TRUE(WaitFor([&] { return Contains(broker.out(), "bootstrap: " + bootstrap + "\n"); }))
      << "stdout: " << broker.out();
  EXPECT_FALSE(std::ifstream(broker.file() + ".tmp").good()) << "temporary bootstrap file left behind";
  ASSERT_TRUE(broker.child().Running());
  broker.child().Kill(SIGTERM);
  EXPECT_EQ(broker.child().Wait(), 0) << broker.err();
}

TEST(Cli, JsonLogsAreOneObjectPerLineWithLevelAndMsg) {
  TempDir dir;
  BrokerProcess broker(dir, {"--log-format", "json"});
  const std::string bootstrap = broker.WaitForBootstrap();
  ASSERT_FALSE(bootstrap.empty()) << "no bootstrap file; stderr: " << broker.err();
  broker.child().Kill(SIGTERM);
  ASSERT_EQ(broker.child().Wait(), 0) << broker.err();
  const auto lines = Lines(broker.err());
  ASSERT_FALSE(lines.empty()) << "no log lines on stderr";
  for (const auto& line : lines) {
    auto j = json::parse(line, nullptr, false);
    ASSERT_TRUE(j.is_object()) << "not a JSON object: " << line;
    EXPECT_TRUE(j.contains("level") && j["level"].is_string()) << line;
    EXPECT_TRUE(j.contains("msg") && j["msg"].is_string()) << line;
  }
  // stdout keeps the plain announcement.
  EXPECT_TRUE(Contains(broker.out(), "bootstrap: " + bootstrap)) << broker.out();
}

void ExpectJsonLogLines(const std::string& err) {
  const auto lines = Lines(err);
  EXPECT_FALSE(lines.empty()) << "no log lines on stderr";
  for (const auto& line : lines) {
    auto j = json::parse(line, nullptr, false);
    EXPECT_TRUE(j.is_object() && j.contains("level") && j.contains("msg")) << "not a JSON log line: " << line;
  }
}

TEST(Cli, JsonLogsOfAWholeEmbeddedRun) {
  // The engine, its Kafka clients and the embedded broker all log through the
  // JSON sink: no plain-text line from any of them.
  TempDir dir;
  Output o = Cityloop(dir, {"--log-format", "json", "run", "--config", testing::ExampleConfigPath(),
                            "--embedded-kafka", "--store", dir.file("store"), "--listen", "127.0.0.1:0",
                            "--exit-when-caught-up"});
  EXPECT_EQ(o.code, 0) << o.out << o.err;
  EXPECT_TRUE(std::regex_search(o.out, std::regex(R"(bootstrap: 127\.0\.0\.1:[0-9]+)"))) << o.out;
  ExpectJsonLogLines(o.err);
}

TEST(Cli, SimulateFastWritesTruthAndReadingsKcatCanConsume) {
  TempDir dir;
  BrokerProcess broker(dir);
  const std::string bootstrap = broker.WaitForBootstrap();
  ASSERT_FALSE(bootstrap.empty()) << "no bootstrap file; stderr: " << broker.err();

  const int64_t now_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
          .count();
  const std::string truth = dir.file("truth.jsonl");
  Output o = Cityloop(dir, {"--log-format", "json", "simulate", "--bootstrap", bootstrap, "--config", testing::ExampleConfigPath(), "--fast",
                            "--duration", "600", "--rate", "5", "--seed", "3", "--start",
                            std::to_string(now_ms - 3600000), "--truth", truth});
  ASSERT_EQ(o.code, 0) << o.out << o.err;
  std::smatch m;
  ASSERT_TRUE(std::regex_search(o.out, m, std::regex(R"(simulated ([0-9]+) readings)"))) << o.out;
  const long long produced = std::stoll(m[1]);
  EXPECT_GT(produced, 0);
  if (!o.err.empty()) ExpectJsonLogLines(o.err);

  ASSERT_TRUE(std::ifstream(truth).good()) << "no truth file";
  for (const auto& line : Lines(ReadFile(truth))) {
    auto j = json::parse(line, nullptr, false);
    ASSERT_TRUE(j.is_object()) << line;
    for (const char* key : {"kind", "category", "cell", "district", "department"}) {
      EXPECT_TRUE(j.contains(key) && j[key].is_string() && !j[key].get<std::string>().empty()) << key << ": " << line;
    }
    ASSERT_TRUE(j.contains("start") && j["start"].is_number_integer()) << line;
    ASSERT_TRUE(j.contains("end") && j["end"].is_number_integer()) << line;
    EXPECT_LE(j["start"].get<int64_t>(), j["end"].get<int64_t>()) << line;
    EXPECT_GE(j["start"].get<int64_t>(), now_ms - 3600000) << line;
  }

  std::string kcat_out;
  if (RunCommand({"/bin/sh", "-c", "command -v kcat"}, nullptr) != 0) GTEST_SKIP() << "kcat is not installed";
  const int rc = RunCommand({"kcat", "-C", "-b", bootstrap, "-t", "city.sensors", "-o", "beginning", "-e", "-q", "-c",
                             "5"},
                            &kcat_out);
  EXPECT_EQ(rc, 0) << kcat_out;
  const auto records = Lines(kcat_out);
  ASSERT_EQ(records.size(), 5u) << kcat_out;
  for (const auto& r : records) {
    auto j = json::parse(r, nullptr, false);
    ASSERT_TRUE(j.is_object()) << r;
    EXPECT_TRUE(j.contains("device_id") && j.contains("kind") && j.contains("ts") && j.contains("value")) << r;
  }

  broker.child().Kill(SIGTERM);
  EXPECT_EQ(broker.child().Wait(), 0) << broker.err();
}

}  // namespace
}  // namespace cityloop
