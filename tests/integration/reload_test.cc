// Hot reload of the rules through SIGHUP, on the real binary: a valid new
// rules file is applied (unchanged rules kept, changed and removed ones
// released), an invalid one changes nothing and is reported with file, line
// and key, and the engine keeps running through both.
#include <gtest/gtest.h>

#include <signal.h>

#include <string>

#include "tests/support/test_support.h"

namespace cityloop {
namespace {

using testing::ChildProcess;

std::string ReplaceOnce(const std::string& text, const std::string& from, const std::string& to) {
  const size_t at = text.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  return at == std::string::npos ? text : text.substr(0, at) + to + text.substr(at + from.size());
}

bool LogHas(const ChildProcess& p, const std::string& needle) {
  return testing::ReadFile(p.log_path()).find(needle) != std::string::npos;
}

TEST(HotReload, SighupAppliesAValidRulesFileAndRejectsAnInvalidOne) {
  testing::TempDir dir;
  const std::string config = dir.file("cityloop.yaml");
  const std::string original = testing::ReadFile(testing::ExampleConfigPath());
  testing::WriteFile(config, original);
  ChildProcess engine({testing::CityloopBinary(), "run", "--config", config, "--embedded-kafka", "--store",
                       dir.file("store"), "--listen", "127.0.0.1:0"},
                      dir.file("engine.log"));
  ASSERT_TRUE(testing::WaitFor([&] { return LogHas(engine, "engine started"); }))
      << testing::ReadFile(engine.log_path());

  // A changed level (gas-leak) and a removed rule (noise-level); the rest as before.
  std::string next = ReplaceOnce(original, "category: gas_leak, above: 500", "category: gas_leak, above: 400");
  next = ReplaceOnce(next,
                     "  - {id: noise-level, kind: threshold, sensor: noise_db, category: noise, above: 85, clear: 75, "
                     "for: 10m}\n",
                     "");
  testing::WriteFile(config, next);
  engine.Kill(SIGHUP);
  ASSERT_TRUE(testing::WaitFor([&] { return LogHas(engine, "rules reloaded from"); }))
      << testing::ReadFile(engine.log_path());
  EXPECT_TRUE(LogHas(engine, "kept, 0 added, 1 changed, 1 removed")) << testing::ReadFile(engine.log_path());

  // A typo: nothing changes, the error names the file, line and key.
  const std::string broken = ReplaceOnce(next, "    sensor: water_level           # metres of water on the road",
                                         "    sensor: water_levle");
  testing::WriteFile(config, broken);
  engine.Kill(SIGHUP);
  ASSERT_TRUE(testing::WaitFor([&] { return LogHas(engine, "rejected, rules unchanged"); }))
      << testing::ReadFile(engine.log_path());
  EXPECT_TRUE(LogHas(engine, config + ":")) << testing::ReadFile(engine.log_path());
  EXPECT_TRUE(LogHas(engine, "rules[0].sensor: unknown sensor kind 'water_levle'"))
      << testing::ReadFile(engine.log_path());

  // A valid change to the city is refused too (cells, devices and routes would change under open cases).
  testing::WriteFile(config, ReplaceOnce(next, "name: 坡子街烟感", "name: 坡子街烟感探头"));
  engine.Kill(SIGHUP);
  ASSERT_TRUE(testing::WaitFor([&] { return LogHas(engine, "the city section changed"); }))
      << testing::ReadFile(engine.log_path());

  EXPECT_TRUE(engine.Running());
  engine.Kill(SIGTERM);
  EXPECT_EQ(engine.Wait(), 0) << testing::ReadFile(engine.log_path());
}

}  // namespace
}  // namespace cityloop
