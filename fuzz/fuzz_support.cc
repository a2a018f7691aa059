#include "fuzz/fuzz_support.h"

#include <cstdio>
#include <cstdlib>

namespace cityloop::fuzz {

const Config& ExampleConfig() {
  static const Config config = [] {
    ConfigLoadResult r = LoadConfigFile(CITYLOOP_FUZZ_EXAMPLE_CONFIG);
    if (!r.config) {
      for (const ConfigError& e : r.errors) std::fprintf(stderr, "%s\n", e.ToString().c_str());
      Fail("cannot load " CITYLOOP_FUZZ_EXAMPLE_CONFIG);
    }
    return std::move(*r.config);
  }();
  return config;
}

std::shared_ptr<const CityModel> ExampleCity() {
  static const std::shared_ptr<const CityModel> city = [] {
    auto built = CityModel::Build(ExampleConfig());
    if (!built.ok()) Fail("cannot build the example city: " + built.status().ToString());
    return std::move(built).value();
  }();
  return city;
}

void Fail(const std::string& what) {
  std::fprintf(stderr, "fuzz check failed: %s\n", what.c_str());
  std::fflush(stderr);
  std::abort();
}

}  // namespace cityloop::fuzz
