#include "core/city.h"

#include <algorithm>
#include <cstdio>

namespace cityloop {

Result<std::shared_ptr<const CityModel>> CityModel::Build(const Config& config) {
  std::shared_ptr<CityModel> m(new CityModel(config));
  const CityOptions& city = m->config_.city;
  m->grid_ = GridIndex(city.grid);
  m->cells_.resize(static_cast<size_t>(m->grid_.cell_count()));
  for (const auto& d : city.districts) m->districts_[d.id] = &d;
  for (const auto& d : city.departments) m->departments_[d.id] = &d;
  for (const auto& c : city.catalogue) m->categories_[c.id] = &c;
  for (const auto& d : city.devices) m->devices_[d.id] = &d;
  for (const auto& c : city.cameras) m->cameras_[c.id] = &c;
  std::unordered_map<std::string, const Street*> streets;
  for (const auto& s : city.streets) streets[s.id] = &s;

  for (const auto& com : city.communities) {
    int n = 0;
    for (int r = com.row_from; r <= com.row_to; ++r) {
      for (int c = com.col_from; c <= com.col_to; ++c) {
        if (r < 0 || c < 0 || r >= city.grid.rows || c >= city.grid.cols) {
          return Status::InvalidArgument("community " + com.id + " reaches outside the grid");
        }
        CellInfo& cell = m->cells_[static_cast<size_t>(m->grid_.Index(r, c))];
        if (cell.community) {
          return Status::InvalidArgument("cell " + std::to_string(r) + "," + std::to_string(c) +
                                         " belongs to both " + cell.community->id + " and " + com.id);
        }
        cell.index = m->grid_.Index(r, c);
        cell.community = &com;
        auto st = streets.find(com.street_id);
        auto di = m->districts_.find(com.district_id);
        if (st == streets.end() || di == m->districts_.end()) {
          return Status::InvalidArgument("community " + com.id + " has no street or district");
        }
        cell.street = st->second;
        cell.district = di->second;
        char idx[16];
        std::snprintf(idx, sizeof idx, "%02d", ++n);
        cell.code = cell.district->code + "-" + cell.street->code + "-" + com.code + "-" + idx;
        cell.center = m->grid_.Center(cell.index);
      }
    }
  }
  for (size_t i = 0; i < m->cells_.size(); ++i) {
    if (!m->cells_[i].community) {
      return Status::InvalidArgument("grid cell " + std::to_string(m->grid_.Row(static_cast<int>(i))) + "," +
                                     std::to_string(m->grid_.Col(static_cast<int>(i))) +
                                     " belongs to no community");
    }
    m->cell_by_code_[m->cells_[i].code] = static_cast<int>(i);
  }
  return std::shared_ptr<const CityModel>(std::move(m));
}

const CellInfo* CityModel::CellAt(LatLon p) const {
  auto idx = grid_.CellAt(p);
  return idx ? &cells_[static_cast<size_t>(*idx)] : nullptr;
}

const CellInfo* CityModel::CellByCode(std::string_view code) const {
  auto it = cell_by_code_.find(std::string(code));
  return it == cell_by_code_.end() ? nullptr : &cells_[static_cast<size_t>(it->second)];
}

template <typename Map>
static auto FindIn(const Map& map, std::string_view id) -> typename Map::mapped_type {
  auto it = map.find(std::string(id));
  return it == map.end() ? nullptr : it->second;
}

const Device* CityModel::FindDevice(std::string_view id) const { return FindIn(devices_, id); }
const Camera* CityModel::FindCamera(std::string_view id) const { return FindIn(cameras_, id); }
const Category* CityModel::FindCategory(std::string_view id) const { return FindIn(categories_, id); }
const Department* CityModel::FindDepartment(std::string_view id) const { return FindIn(departments_, id); }
const District* CityModel::FindDistrict(std::string_view id) const { return FindIn(districts_, id); }

const SensorKind* CityModel::FindSensorKind(std::string_view kind) const {
  auto it = config_.city.sensor_kinds.find(std::string(kind));
  return it == config_.city.sensor_kinds.end() ? nullptr : &it->second;
}

std::string CityModel::DepartmentFor(std::string_view category, const CellInfo& cell) const {
  if (const Category* c = FindCategory(category); c && !c->department.empty()) return c->department;
  return cell.district ? cell.district->default_department : std::string();
}

std::vector<const Unit*> CityModel::UnitsNearest(std::string_view dept, const CellInfo& cell, LatLon p) const {
  std::vector<const Unit*> out;
  for (const auto& u : config_.city.units) {
    if (u.department != dept) continue;
    if (!u.districts.empty() && cell.district &&
        std::find(u.districts.begin(), u.districts.end(), cell.district->id) == u.districts.end()) {
      continue;
    }
    out.push_back(&u);
  }
  std::stable_sort(out.begin(), out.end(), [&](const Unit* a, const Unit* b) {
    return DistanceMeters(a->base, p) < DistanceMeters(b->base, p);
  });
  return out;
}

}  // namespace cityloop
