// A small city built in code for unit tests: a 4x4 grid of 500 m cells owned
// by two districts (west: cols 0-1 "west", east: cols 2-3 "east"), a drainage
// and a gas department, water-level and gas devices, units, and threshold rules
// (water_level above 0.30 clear 0.20 for 2m; gas_ppm above 500 for 0).
// One camera, cam-031, in cell (1, 2).
#pragma once

#include <memory>

#include "core/city.h"
#include "core/config.h"

namespace cityloop::testing {

Config TestConfig();
std::shared_ptr<const CityModel> TestCity(const Config& config = TestConfig());
// Centre of grid cell (row, col) of the test city.
LatLon TestCellCenter(int row, int col);

}  // namespace cityloop::testing
