#include "tests/support/engine_process.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <regex>
#include <sstream>
#include <thread>

namespace cityloop::testing {

int64_t SteadyMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// ---------------------------------------------------------------- broker

BrokerProcess::BrokerProcess(const TempDir& dir, const std::string& config) : log_path_(dir.file("broker.log")) {
  const std::string file = dir.file("bootstrap");
  child_ = std::make_unique<ChildProcess>(
      std::vector<std::string>{CityloopBinary(), "broker", "--config", config, "--bootstrap-file", file, "--control"},
      log_path_, std::vector<std::string>{}, /*pipe_stdin=*/true);
  EXPECT_TRUE(WaitFor([&] { return !ReadFile(file).empty() || !child_->Running(); })) << log();
  bootstrap_ = ReadFile(file);
  while (!bootstrap_.empty() && (bootstrap_.back() == '\n' || bootstrap_.back() == ' ')) bootstrap_.pop_back();
  EXPECT_FALSE(bootstrap_.empty()) << "the broker did not start: " << log();
}

std::string BrokerProcess::Control(const std::string& line) {
  if (!child_->WriteStdin(line + "\n")) return "cannot write to the broker";
  const int want = ++answered_;
  std::string answer;
  const bool got = WaitFor(
      [&] {
        std::istringstream in(log());
        int seen = 0;
        for (std::string l; std::getline(in, l);) {
          if (l.rfind("control: ", 0) == 0 && ++seen == want) {
            answer = l;
            return true;
          }
        }
        return false;
      },
      std::chrono::seconds(20));
  if (!got) return "no answer to '" + line + "'";
  return answer == "control: ok " + line ? "" : answer;
}

// ---------------------------------------------------------------- engine

namespace {
size_t FileSize(const std::string& path) {
  std::error_code ec;
  const auto n = std::filesystem::file_size(path, ec);
  return ec ? 0 : static_cast<size_t>(n);
}

std::vector<std::string> RunArgv(const std::string& config, const std::string& bootstrap, const std::string& store,
                                 const std::vector<std::string>& extra) {
  std::vector<std::string> a{CityloopBinary(), "run", "--config", config, "--store", store, "--listen", "127.0.0.1:0"};
  if (!bootstrap.empty()) a.insert(a.end(), {"--bootstrap", bootstrap});
  a.insert(a.end(), extra.begin(), extra.end());
  return a;
}
}  // namespace

EngineProcess::EngineProcess(const std::string& config, const std::string& bootstrap, const std::string& store,
                             const std::string& log_path, const std::vector<std::string>& extra,
                             const std::vector<std::string>& env)
    : log_path_(log_path),
      log_from_(FileSize(log_path)),
      started_ms_(SteadyMs()),
      child_(RunArgv(config, bootstrap, store, extra), log_path, env) {}

std::string EngineProcess::log() const {
  const std::string all = ReadFile(log_path_);
  return log_from_ < all.size() ? all.substr(log_from_) : std::string();
}

uint16_t EngineProcess::WaitForPort(std::chrono::milliseconds deadline) {
  if (port_ != 0) return port_;
  static const std::regex kHttp(R"(HTTP on [0-9.]+:([0-9]+))");
  WaitFor(
      [&] {
        std::smatch m;
        const std::string text = log();
        if (std::regex_search(text, m, kHttp)) port_ = static_cast<uint16_t>(std::stoi(m[1]));
        return port_ != 0 || !child_.Running();
      },
      deadline);
  return port_;
}

int64_t EngineProcess::WaitReady(std::chrono::milliseconds deadline) {
  const int64_t end = SteadyMs() + deadline.count();
  if (WaitForPort(deadline) == 0) return -1;
  while (SteadyMs() < end && child_.Running()) {
    if (HttpGet(port_, "/readyz").status == 200) return SteadyMs() - started_ms_;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));  // polling interval of the probe
  }
  return -1;
}

HttpReply EngineProcess::Get(const std::string& target) {
  if (WaitForPort() == 0) return {};
  return HttpGet(port_, target);
}

double EngineProcess::Metric(const std::string& series) {
  const HttpReply r = Get("/metrics");
  return r.status == 200 ? MetricValue(r.body, series) : -1;
}

bool EngineProcess::WaitMetricAtLeast(const std::string& series, double value, std::chrono::milliseconds deadline) {
  const int64_t end = SteadyMs() + deadline.count();
  while (SteadyMs() < end && child_.Running()) {
    if (Metric(series) >= value) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));  // polling interval of the probe
  }
  return false;
}

double EngineProcess::MetricTotal(const std::string& name) {
  const HttpReply r = Get("/metrics");
  return r.status == 200 ? MetricSum(r.body, name) : -1;
}

}  // namespace cityloop::testing
