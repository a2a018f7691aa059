#include "core/geo.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>

// Boost 1.74's R-tree reaches a header it deprecated itself, which prints a
// #pragma message in every build; this is Boost's switch to silence it.
#define BOOST_ALLOW_DEPRECATED_HEADERS
#include <boost/geometry/algorithms/intersects.hpp>
#include <boost/geometry/geometries/box.hpp>
#include <boost/geometry/geometries/point.hpp>
#include <boost/geometry/index/rtree.hpp>
#include <boost/iterator/function_output_iterator.hpp>

namespace cityloop {
namespace {
namespace bg = boost::geometry;
namespace bgi = boost::geometry::index;

constexpr double kEarthRadiusM = 6371008.8;
constexpr double kMetersPerDegreeLat = 111320.0;
constexpr double kPi = 3.14159265358979323846;
constexpr double kInf = std::numeric_limits<double>::infinity();
double Rad(double deg) { return deg * kPi / 180.0; }
double Deg(double rad) { return rad * 180.0 / kPi; }

// Cells live in a cartesian plane with x = longitude and y = latitude, in
// degrees. Every cell is an axis-aligned rectangle there (its edges are
// meridians and parallels), so boxes index them exactly and point-in-cell is
// four comparisons. A geographic coordinate system would buy antimeridian
// wrapping at the price of trigonometry in every comparison; metric questions
// go through DistanceMeters instead.
using Point = bg::model::point<double, 2, bg::cs::cartesian>;
using Box = bg::model::box<Point>;
using Value = std::pair<Box, int>;  // a cell's rectangle and its index
// The tree is packed once by the range constructor and never modified, so the
// split algorithm never runs; only the node capacity matters. Of 4, 6, 8 and
// 16 per node, 8 gave the best CellAt across grids from 6x8 to 1000x1000.
using RTree = bgi::rtree<Value, bgi::quadratic<8>>;

double Lon(const Point& pt) { return bg::get<0>(pt); }
double Lat(const Point& pt) { return bg::get<1>(pt); }

// Half-open containment: west and south edges in, east and north edges out.
bool HalfOpenContains(const Box& b, double lat, double lon) {
  return lon >= Lon(b.min_corner()) && lon < Lon(b.max_corner()) && lat >= Lat(b.min_corner()) &&
         lat < Lat(b.max_corner());
}

double DistanceToBox(LatLon p, const Box& b) {
  const LatLon nearest{std::clamp(p.lat, Lat(b.min_corner()), Lat(b.max_corner())),
                       std::clamp(p.lon, Lon(b.min_corner()), Lon(b.max_corner()))};
  return DistanceMeters(p, nearest);
}

// A lon/lat box that holds every point within radius_m metres of p. Latitude:
// a great-circle distance d moves latitude by at most d / R. Longitude: from
// the haversine formula, sin^2(dlon/2) <= sin^2(d/2R) / (cos lat_p * cos lat_q),
// with lat_q anywhere in the latitude band; when that bound reaches 1 (near a
// pole, or a radius a quarter of the way round the Earth) every longitude
// qualifies. Slightly widened against rounding: the box only prunes, the
// exact distance decides.
Box CoveringBox(LatLon p, double radius_m) {
  constexpr double kWiden = 1 + 1e-6;
  const double ang = radius_m / kEarthRadiusM;
  if (!(ang < kPi / 2)) return Box(Point(-kInf, -kInf), Point(kInf, kInf));
  const double dlat = Deg(ang) * kWiden;
  const double farthest_lat = std::max(std::abs(p.lat - dlat), std::abs(p.lat + dlat));
  double dlon = kInf;
  if (farthest_lat < 90) {
    const double s = std::sin(ang / 2) / std::sqrt(std::cos(Rad(p.lat)) * std::cos(Rad(farthest_lat)));
    if (s < 1) dlon = Deg(2 * std::asin(s)) * kWiden;
  }
  return Box(Point(p.lon - dlon, p.lat - dlat), Point(p.lon + dlon, p.lat + dlat));
}

// Runs a query that appends each hit's index to out, then sorts out.
template <typename Predicates>
void QueryIndices(const RTree& tree, const Predicates& predicates, std::vector<int>& out) {
  tree.query(predicates, boost::make_function_output_iterator([&out](const Value& v) { out.push_back(v.second); }));
  std::sort(out.begin(), out.end());
}
}  // namespace

// The cell edges (shared by neighbouring cells, so adjacent rectangles meet
// exactly) and the R-tree over the cell rectangles built from them.
struct GridIndex::Tree {
  int cols = 0;
  std::vector<double> lat_edges;  // rows + 1, south to north
  std::vector<double> lon_edges;  // cols + 1, west to east
  RTree rtree;

  // Null when g has no cells or its edges do not strictly increase (a cell
  // size or origin that is not a usable finite number).
  static std::shared_ptr<const Tree> Build(const GridGeometry& g, double dlat, double dlon) {
    if (g.rows <= 0 || g.cols <= 0) return nullptr;
    auto t = std::make_shared<Tree>();
    t->cols = g.cols;
    if (!Edges(g.origin.lat, dlat, g.rows, t->lat_edges) || !Edges(g.origin.lon, dlon, g.cols, t->lon_edges)) {
      return nullptr;
    }
    std::vector<Value> cells;
    cells.reserve(static_cast<size_t>(g.rows) * static_cast<size_t>(g.cols));
    for (int i = 0; i < g.rows * g.cols; ++i) cells.emplace_back(t->CellBox(i), i);
    t->rtree = RTree(cells.begin(), cells.end());  // the range constructor packs the tree
    return t;
  }

  Box CellBox(int index) const {
    const auto r = static_cast<size_t>(index / cols), c = static_cast<size_t>(index % cols);
    return Box(Point(lon_edges[c], lat_edges[r]), Point(lon_edges[c + 1], lat_edges[r + 1]));
  }

 private:
  static bool Edges(double origin, double step, int n, std::vector<double>& out) {
    out.reserve(static_cast<size_t>(n) + 1);
    for (int i = 0; i <= n; ++i) {
      const double e = origin + i * step;
      if (!std::isfinite(e) || (i > 0 && !(e > out.back()))) return false;
      out.push_back(e);
    }
    return true;
  }
};

double DistanceMeters(LatLon a, LatLon b) {
  const double dlat = Rad(b.lat - a.lat);
  const double dlon = Rad(b.lon - a.lon);
  const double h = std::sin(dlat / 2) * std::sin(dlat / 2) +
                   std::cos(Rad(a.lat)) * std::cos(Rad(b.lat)) * std::sin(dlon / 2) * std::sin(dlon / 2);
  return 2 * kEarthRadiusM * std::asin(std::min(1.0, std::sqrt(h)));
}

GridIndex::GridIndex(GridGeometry g) : g_(g) {
  dlat_ = g_.cell_size_m / kMetersPerDegreeLat;
  dlon_ = g_.cell_size_m / (kMetersPerDegreeLat * std::cos(Rad(g_.origin.lat)));
  tree_ = Tree::Build(g_, dlat_, dlon_);
}

std::optional<int> GridIndex::CellAt(LatLon p) const {
  if (!tree_ || !std::isfinite(p.lat) || !std::isfinite(p.lon)) return std::nullopt;
  // intersects() is closed, so a point on a shared edge or corner hits up to
  // four rectangles; the half-open test keeps exactly one of them.
  std::optional<int> out;
  tree_->rtree.query(
      bgi::intersects(Point(p.lon, p.lat)) &&
          bgi::satisfies([&p](const Value& v) { return HalfOpenContains(v.first, p.lat, p.lon); }),
      boost::make_function_output_iterator([&out](const Value& v) { out = v.second; }));
  return out;
}

LatLon GridIndex::Center(int index) const {
  return {g_.origin.lat + (Row(index) + 0.5) * dlat_, g_.origin.lon + (Col(index) + 0.5) * dlon_};
}

std::vector<int> GridIndex::Neighbours(int index) const {
  std::vector<int> out;
  if (!IsCell(index)) return out;
  // Rectangles that touch this one: adjacent cells share their edge values
  // exactly, and cells two apart are separated by a whole cell.
  out.reserve(8);
  QueryIndices(tree_->rtree,
               bgi::intersects(tree_->CellBox(index)) &&
                   bgi::satisfies([index](const Value& v) { return v.second != index; }),
               out);
  return out;
}

std::vector<LatLon> GridIndex::Polygon(int index) const {
  if (!IsCell(index)) return {};
  const Box b = tree_->CellBox(index);
  const double south = Lat(b.min_corner()), north = Lat(b.max_corner());
  const double west = Lon(b.min_corner()), east = Lon(b.max_corner());
  return {{south, west}, {south, east}, {north, east}, {north, west}};
}

std::vector<int> GridIndex::CellsWithin(LatLon p, double radius_m) const {
  std::vector<int> out;
  if (!tree_ || !std::isfinite(p.lat) || !std::isfinite(p.lon)) return out;
  if (!(radius_m > 0)) {
    if (auto cell = CellAt(p)) out.push_back(*cell);
    return out;
  }
  QueryIndices(tree_->rtree,
               bgi::intersects(CoveringBox(p, radius_m)) &&
                   bgi::satisfies([&](const Value& v) { return DistanceToBox(p, v.first) <= radius_m; }),
               out);
  return out;
}

double GridIndex::DistanceToCellMeters(LatLon p, int index) const {
  if (!IsCell(index) || !std::isfinite(p.lat) || !std::isfinite(p.lon)) return kInf;
  return DistanceToBox(p, tree_->CellBox(index));
}

}  // namespace cityloop
