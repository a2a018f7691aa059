// The config loader (core/config_loader.cc) on YAML text, in memory
// (LoadConfigText). The loader must answer every text with a config or with
// located errors; its catch-all for exceptions ("internal error while loading
// the config") is a bug caught, and so is a validated config that
// CityModel::Build refuses (Build requires a validated config).
#include <string>

#include "core/city.h"
#include "core/config.h"
#include "fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace cityloop;
  const std::string text(fuzz::AsText(data, size));
  const ConfigLoadResult r = LoadConfigText(text, "fuzz.yaml");
  for (const ConfigError& e : r.errors) {
    fuzz::Check(e.message.rfind("internal error", 0) != 0, "the loader threw: " + e.ToString());
    fuzz::Check(e.line >= 0, "an error at line " + std::to_string(e.line));
    fuzz::Check(!e.message.empty(), "an error without a message: " + e.ToString());
  }
  if (r.config) {
    fuzz::Check(r.errors.empty(), "a config with errors");
    auto city = CityModel::Build(*r.config);
    fuzz::Check(city.ok(), "CityModel::Build refuses a validated config: " + city.status().ToString());
  } else {
    fuzz::Check(!r.errors.empty(), "no config and no error");
  }
  return 0;
}
