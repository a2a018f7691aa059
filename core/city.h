// CityModel: the read-only lookups every stage needs, derived once from the
// validated Config: which cell a point is in, who owns a cell (属地), which
// department a category goes to (权责清单), where a registered device is.
// Immutable after Build(); share it by const reference across threads.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/config.h"
#include "core/geo.h"

namespace cityloop {

struct CellInfo {
  int index = -1;
  std::string code;  // district + street + community + 2-digit cell, e.g. "430102-001-002-07"
  const District* district = nullptr;
  const Street* street = nullptr;
  const Community* community = nullptr;
  LatLon center;
};

class CityModel {
 public:
  // The config must already be validated (every cell owned, every id resolved).
  static Result<std::shared_ptr<const CityModel>> Build(const Config& config);

  const Config& config() const { return config_; }
  const GridIndex& grid() const { return grid_; }

  const CellInfo* CellAt(LatLon p) const;
  const CellInfo& Cell(int index) const { return cells_[static_cast<size_t>(index)]; }
  const CellInfo* CellByCode(std::string_view code) const;
  const Device* FindDevice(std::string_view id) const;
  const Camera* FindCamera(std::string_view id) const;
  const Category* FindCategory(std::string_view id) const;
  const Department* FindDepartment(std::string_view id) const;
  const District* FindDistrict(std::string_view id) const;
  const SensorKind* FindSensorKind(std::string_view kind) const;
  // The department responsible for category in cell: the catalogue's entry,
  // else the district's default department.
  std::string DepartmentFor(std::string_view category, const CellInfo& cell) const;
  // Units of dept whose area covers the district, nearest to p first.
  std::vector<const Unit*> UnitsNearest(std::string_view dept, const CellInfo& cell, LatLon p) const;

 private:
  explicit CityModel(Config c) : config_(std::move(c)) {}

  Config config_;
  GridIndex grid_;
  std::vector<CellInfo> cells_;
  std::unordered_map<std::string, int> cell_by_code_;
  std::unordered_map<std::string, const Device*> devices_;
  std::unordered_map<std::string, const Camera*> cameras_;
  std::unordered_map<std::string, const Category*> categories_;
  std::unordered_map<std::string, const Department*> departments_;
  std::unordered_map<std::string, const District*> districts_;
};

}  // namespace cityloop
