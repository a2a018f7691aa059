#include "tests/support/test_city.h"

#include <stdexcept>

namespace cityloop::testing {

Config TestConfig() {
  Config c;
  c.city.name = "testville";
  c.city.utc_offset_minutes = 480;
  c.city.grid = {{28.17, 112.95}, 500, 4, 4};
  c.city.districts = {{"west", "West", "430102", "city_management"}, {"east", "East", "430103", "city_management"}};
  c.city.streets = {{"w1", "West street", "001", "west"}, {"e1", "East street", "001", "east"}};
  c.city.communities = {{"w1a", "West A", "001", "w1", "west", 0, 3, 0, 1},
                        {"e1a", "East A", "001", "e1", "east", 0, 3, 2, 3}};
  c.city.departments = {{"drainage", "Drainage"}, {"gas", "Gas"}, {"city_management", "City management"}};
  c.city.catalogue = {{"waterlogging", "Road waterlogging", "0302", "drainage", Priority::kHigh},
                      {"gas_leak", "Gas leak", "0401", "gas", Priority::kUrgent}};
  c.city.sensor_kinds["water_level"] = {"water_level", "m", 0, 10, 30000};
  c.city.sensor_kinds["gas_ppm"] = {"gas_ppm", "ppm", 0, 50000, 30000};
  c.city.devices = {{"wl-1", "water_level", TestCellCenter(0, 0), "WL 1"},
                    {"wl-2", "water_level", TestCellCenter(2, 3), "WL 2"},
                    {"gas-1", "gas_ppm", TestCellCenter(1, 1), "Gas 1"}};
  c.city.cameras = {{"cam-031", TestCellCenter(1, 2), "Cam 31"}};
  c.city.units = {{"drain-1", "drainage", "Drain 1", TestCellCenter(0, 1), {}},
                  {"drain-2", "drainage", "Drain 2", TestCellCenter(3, 3), {"east"}},
                  {"gas-u1", "gas", "Gas 1", TestCellCenter(3, 0), {}}};
  ThresholdRule wl;
  wl.id = "road-waterlogging";
  wl.sensor_kind = "water_level";
  wl.category = "waterlogging";
  wl.raise = 0.30;
  wl.clear = 0.20;
  wl.min_duration_ms = 2 * 60000;
  ThresholdRule gas;
  gas.id = "gas-high";
  gas.sensor_kind = "gas_ppm";
  gas.category = "gas_leak";
  gas.raise = 500;
  gas.clear = 300;
  c.rules.threshold = {wl, gas};
  c.rules.merge_window_ms = 30 * 60000;
  auto wall = [](int64_t minutes) { return SlaLimit{SlaLimit::Basis::kWall, minutes * 60000}; };
  c.sla.by_priority[SlaStage::kAcknowledge] = {{Priority::kUrgent, wall(10)}, {Priority::kHigh, wall(30)}};
  c.sla.by_priority[SlaStage::kHandle] = {{Priority::kUrgent, wall(60)}, {Priority::kHigh, wall(240)}};
  return c;
}

std::shared_ptr<const CityModel> TestCity(const Config& config) {
  auto city = CityModel::Build(config);
  if (!city.ok()) throw std::runtime_error(city.status().ToString());
  return std::move(city).value();
}

LatLon TestCellCenter(int row, int col) {
  return GridIndex(GridGeometry{{28.17, 112.95}, 500, 4, 4}).Center(row * 4 + col);
}

}  // namespace cityloop::testing
