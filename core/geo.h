// Geography: points, distances and the city's grid of cells (万米单元网格).
//
// GridGeometry describes a regular lat/lon raster anchored at its south-west
// corner; cell (row, col) counts rows northwards and columns eastwards, and
// index = row * cols + col. GridIndex turns that geometry into cell
// rectangles and answers point -> cell, neighbour and radius look-ups from a
// Boost.Geometry R-tree over those rectangles.
//
// Ownership and threads: a GridIndex owns its geometry by value and shares
// its R-tree (immutable, built once in the constructor) between copies, so
// copying and moving are cheap and a default-constructed GridIndex allocates
// nothing. After construction every member is const and only queries the
// tree, so any number of threads may read one GridIndex (or its copies)
// concurrently. CityModel holds one by value.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace cityloop {

struct LatLon {
  double lat = 0;
  double lon = 0;
  bool operator==(const LatLon&) const = default;
};

// Great-circle distance in metres.
double DistanceMeters(LatLon a, LatLon b);

struct GridGeometry {
  LatLon origin;          // south-west corner of cell (0, 0)
  double cell_size_m = 500;
  int rows = 0;
  int cols = 0;
  bool operator==(const GridGeometry&) const = default;
};

class GridIndex {
 public:
  GridIndex() = default;
  // Cells are lat/lon rectangles dlat = cell_size_m / 111320 degrees high and
  // dlon = cell_size_m / (111320 * cos(origin.lat)) degrees wide. A geometry
  // with no rows or columns, or whose dlat/dlon is not a positive finite
  // number, yields a grid that contains no point. The grid cannot cross the
  // antimeridian: longitudes are compared as plain numbers.
  explicit GridIndex(GridGeometry g);

  const GridGeometry& geometry() const { return g_; }
  int cell_count() const { return g_.rows * g_.cols; }
  // Index of the cell that holds p, or nullopt when p lies outside the grid
  // or is not finite. Cells are half-open: a point on an edge shared by two
  // cells belongs to the one to its north / east, and the grid's own north
  // and east borders lie outside it.
  std::optional<int> CellAt(LatLon p) const;
  bool Contains(LatLon p) const { return CellAt(p).has_value(); }
  int Row(int index) const { return index / g_.cols; }
  int Col(int index) const { return index % g_.cols; }
  int Index(int row, int col) const { return row * g_.cols + col; }
  LatLon Center(int index) const;
  // The up to 8 cells around index (not index itself), ascending. Empty when
  // index is not a cell of the grid.
  std::vector<int> Neighbours(int index) const;
  // The cell's corners: south-west, south-east, north-east, north-west.
  // Empty when index is not a cell of the grid.
  std::vector<LatLon> Polygon(int index) const;
  // Every cell whose rectangle comes within radius_m metres of p (the cell
  // holding p included when p is inside the grid), ascending. radius_m <= 0
  // (or NaN) means only the cell holding p. Empty when p is not finite.
  std::vector<int> CellsWithin(LatLon p, double radius_m) const;
  // Metres from p to the nearest point of the cell's rectangle: 0 inside it
  // or on its edges; +infinity when index is not a cell or p is not finite.
  // The nearest point is found by clamping p's lat/lon into the rectangle,
  // which ignores that parallels are not great circles: the error is
  // centimetres at 1 km, negligible for cells of city size.
  double DistanceToCellMeters(LatLon p, int index) const;

 private:
  struct Tree;  // the R-tree and the cell edges, defined in geo.cc

  bool IsCell(int index) const { return tree_ && index >= 0 && index < cell_count(); }

  GridGeometry g_;
  double dlat_ = 0;
  double dlon_ = 0;
  std::shared_ptr<const Tree> tree_;  // null when the grid contains no point
};

}  // namespace cityloop
