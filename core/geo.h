// Geography: points, distances and the city's grid of cells (万米单元网格).
// The grid is a regular lat/lon raster anchored at its south-west corner;
// cell (row, col) counts rows northwards and columns eastwards. Immutable
// after construction, so any thread may read it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace cityloop {

struct LatLon {
  double lat = 0;
  double lon = 0;
};

// Great-circle distance in metres.
double DistanceMeters(LatLon a, LatLon b);

struct GridGeometry {
  LatLon origin;          // south-west corner of cell (0, 0)
  double cell_size_m = 500;
  int rows = 0;
  int cols = 0;
};

class GridIndex {
 public:
  GridIndex() = default;
  explicit GridIndex(GridGeometry g);

  const GridGeometry& geometry() const { return g_; }
  int cell_count() const { return g_.rows * g_.cols; }
  // Index of the cell that holds p, or nullopt when p lies outside the grid.
  std::optional<int> CellAt(LatLon p) const;
  bool Contains(LatLon p) const { return CellAt(p).has_value(); }
  int Row(int index) const { return index / g_.cols; }
  int Col(int index) const { return index % g_.cols; }
  int Index(int row, int col) const { return row * g_.cols + col; }
  LatLon Center(int index) const;
  // The up to 8 cells around index (not index itself).
  std::vector<int> Neighbours(int index) const;

 private:
  GridGeometry g_;
  double dlat_ = 0;
  double dlon_ = 0;
};

}  // namespace cityloop
