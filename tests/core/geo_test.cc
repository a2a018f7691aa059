#include "core/geo.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>
#include <random>
#include <thread>
#include <utility>
#include <vector>

namespace cityloop {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kPi = 3.14159265358979323846;

// The city of tests/support/test_city.cc, and a larger one.
const GridGeometry kSmall{{28.17, 112.95}, 500, 4, 5};
const GridGeometry kLarge{{28.05, 112.80}, 500, 200, 300};

double CellHeightDeg(const GridGeometry& g) { return g.cell_size_m / 111320.0; }
double CellWidthDeg(const GridGeometry& g) { return g.cell_size_m / (111320.0 * std::cos(g.origin.lat * kPi / 180)); }

// The arithmetic GridIndex::CellAt used before the R-tree, as the reference.
std::optional<int> ArithmeticCellAt(const GridGeometry& g, LatLon p) {
  if (!std::isfinite(p.lat) || !std::isfinite(p.lon)) return std::nullopt;
  const double r = std::floor((p.lat - g.origin.lat) / CellHeightDeg(g));
  const double c = std::floor((p.lon - g.origin.lon) / CellWidthDeg(g));
  if (r < 0 || c < 0 || r >= g.rows || c >= g.cols) return std::nullopt;
  return static_cast<int>(r) * g.cols + static_cast<int>(c);
}

// Distance from p to the cell's rectangle computed from its corners alone.
double BruteDistance(const GridIndex& grid, LatLon p, int index) {
  const std::vector<LatLon> c = grid.Polygon(index);
  const LatLon nearest{std::clamp(p.lat, c[0].lat, c[2].lat), std::clamp(p.lon, c[0].lon, c[2].lon)};
  return DistanceMeters(p, nearest);
}

std::vector<int> BruteCellsWithin(const GridIndex& grid, LatLon p, double radius_m) {
  std::vector<int> out;
  if (!(radius_m > 0)) {
    if (auto cell = grid.CellAt(p)) out.push_back(*cell);
    return out;
  }
  for (int i = 0; i < grid.cell_count(); ++i) {
    if (BruteDistance(grid, p, i) <= radius_m) out.push_back(i);
  }
  return out;
}

// A uniformly random point over the grid and a margin of one cell around it.
LatLon RandomPointAround(const GridGeometry& g, std::mt19937_64& rng) {
  const double h = CellHeightDeg(g), w = CellWidthDeg(g);
  std::uniform_real_distribution<double> lat(g.origin.lat - h, g.origin.lat + (g.rows + 1) * h);
  std::uniform_real_distribution<double> lon(g.origin.lon - w, g.origin.lon + (g.cols + 1) * w);
  return {lat(rng), lon(rng)};
}

TEST(GridIndex, DefaultConstructedHoldsNothing) {
  const GridIndex grid;
  EXPECT_EQ(grid.cell_count(), 0);
  EXPECT_FALSE(grid.CellAt({0, 0}));
  EXPECT_FALSE(grid.Contains({0, 0}));
  EXPECT_TRUE(grid.Neighbours(0).empty());
  EXPECT_TRUE(grid.Polygon(0).empty());
  EXPECT_TRUE(grid.CellsWithin({0, 0}, 1000).empty());
  EXPECT_EQ(grid.DistanceToCellMeters({0, 0}, 0), kInf);
}

TEST(GridIndex, UnusableGeometryContainsNoPoint) {
  for (const GridGeometry& g : {GridGeometry{{28, 112}, 0, 3, 3}, GridGeometry{{28, 112}, -500, 3, 3},
                                GridGeometry{{28, 112}, 500, 0, 3}, GridGeometry{{kNaN, 112}, 500, 3, 3},
                                GridGeometry{{28, kInf}, 500, 3, 3}}) {
    const GridIndex grid(g);
    EXPECT_FALSE(grid.CellAt({28.001, 112.001}));
    EXPECT_TRUE(grid.Polygon(0).empty());
    EXPECT_TRUE(grid.CellsWithin({28.001, 112.001}, 5000).empty());
  }
}

TEST(GridIndex, CellAtFindsEveryCentre) {
  for (const GridGeometry& g : {kSmall, kLarge, GridGeometry{{-33.9, 151.1}, 250, 7, 3}}) {
    const GridIndex grid(g);
    for (int i = 0; i < grid.cell_count(); ++i) ASSERT_EQ(grid.CellAt(grid.Center(i)), i) << i;
  }
}

TEST(GridIndex, SharedEdgesAndCornersBelongToTheCellNorthEast) {
  const GridIndex grid(kSmall);
  for (int i = 0; i < grid.cell_count(); ++i) {
    const std::vector<LatLon> c = grid.Polygon(i);
    const LatLon sw = c[0], ne = c[2];
    const double mid_lat = (sw.lat + ne.lat) / 2, mid_lon = (sw.lon + ne.lon) / 2;
    EXPECT_EQ(grid.CellAt(sw), i) << "south-west corner of " << i;
    EXPECT_EQ(grid.CellAt({sw.lat, mid_lon}), i) << "south edge of " << i;
    EXPECT_EQ(grid.CellAt({mid_lat, sw.lon}), i) << "west edge of " << i;
    // North and east edges belong to the next cell, or lie outside the grid.
    const int r = grid.Row(i), col = grid.Col(i);
    const std::optional<int> north = r + 1 < kSmall.rows ? std::optional<int>(grid.Index(r + 1, col)) : std::nullopt;
    const std::optional<int> east = col + 1 < kSmall.cols ? std::optional<int>(grid.Index(r, col + 1)) : std::nullopt;
    const std::optional<int> north_east =
        north && east ? std::optional<int>(grid.Index(r + 1, col + 1)) : std::nullopt;
    EXPECT_EQ(grid.CellAt({ne.lat, mid_lon}), north) << "north edge of " << i;
    EXPECT_EQ(grid.CellAt({mid_lat, ne.lon}), east) << "east edge of " << i;
    EXPECT_EQ(grid.CellAt(ne), north_east) << "north-east corner of " << i;
  }
}

TEST(GridIndex, CellAtJustOutsideEachBorder) {
  const GridIndex grid(kSmall);
  const LatLon sw = grid.Polygon(0)[0];
  const LatLon ne = grid.Polygon(grid.cell_count() - 1)[2];
  const double mid_lat = (sw.lat + ne.lat) / 2, mid_lon = (sw.lon + ne.lon) / 2;
  auto below = [](double x) { return std::nextafter(x, -kInf); };
  auto above = [](double x) { return std::nextafter(x, kInf); };

  EXPECT_FALSE(grid.CellAt({below(sw.lat), mid_lon}));  // south
  EXPECT_TRUE(grid.CellAt({sw.lat, mid_lon}));
  EXPECT_FALSE(grid.CellAt({mid_lat, below(sw.lon)}));  // west
  EXPECT_TRUE(grid.CellAt({mid_lat, sw.lon}));
  EXPECT_FALSE(grid.CellAt({ne.lat, mid_lon}));  // north: half-open
  EXPECT_EQ(grid.Row(*grid.CellAt({below(ne.lat), mid_lon})), kSmall.rows - 1);
  EXPECT_FALSE(grid.CellAt({above(ne.lat), mid_lon}));
  EXPECT_FALSE(grid.CellAt({mid_lat, ne.lon}));  // east: half-open
  EXPECT_EQ(grid.Col(*grid.CellAt({mid_lat, below(ne.lon)})), kSmall.cols - 1);
  EXPECT_FALSE(grid.CellAt({mid_lat, above(ne.lon)}));
  EXPECT_EQ(grid.CellAt(sw), 0);
  EXPECT_FALSE(grid.CellAt({below(sw.lat), below(sw.lon)}));
  EXPECT_EQ(grid.CellAt({below(ne.lat), below(ne.lon)}), grid.cell_count() - 1);
  EXPECT_FALSE(grid.Contains({0, 0}));
}

TEST(GridIndex, CellAtRejectsNonFinitePoints) {
  const GridIndex grid(kSmall);
  const LatLon c = grid.Center(0);
  for (const LatLon p : {LatLon{kNaN, c.lon}, LatLon{c.lat, kNaN}, LatLon{kNaN, kNaN}, LatLon{kInf, c.lon},
                         LatLon{-kInf, c.lon}, LatLon{c.lat, kInf}, LatLon{c.lat, -kInf}}) {
    EXPECT_FALSE(grid.CellAt(p));
    EXPECT_FALSE(grid.Contains(p));
    EXPECT_TRUE(grid.CellsWithin(p, 1000).empty());
    EXPECT_EQ(grid.DistanceToCellMeters(p, 0), kInf);
  }
}

// The R-tree agrees with floor() arithmetic everywhere except within rounding
// distance of an edge, where the stored edges decide (see the edge test).
TEST(GridIndex, CellAtAgreesWithArithmeticOnRandomPoints) {
  std::mt19937_64 rng(20261202);
  for (const GridGeometry& g : {GridGeometry{{28.2, 112.9}, 500, 1, 1}, kSmall, kLarge,
                                GridGeometry{{-33.9, 151.1}, 137.5, 31, 17}}) {
    const GridIndex grid(g);
    int compared = 0, inside = 0;
    for (int i = 0; i < 200000; ++i) {
      const LatLon p = RandomPointAround(g, rng);
      const double fr = (p.lat - g.origin.lat) / CellHeightDeg(g), fc = (p.lon - g.origin.lon) / CellWidthDeg(g);
      if (std::abs(fr - std::round(fr)) < 1e-9 || std::abs(fc - std::round(fc)) < 1e-9) continue;
      ++compared;
      const std::optional<int> want = ArithmeticCellAt(g, p);
      inside += want.has_value();
      ASSERT_EQ(grid.CellAt(p), want) << g.rows << "x" << g.cols << " at " << p.lat << "," << p.lon;
    }
    EXPECT_GT(compared, 199000);
    EXPECT_GT(inside, compared / 20);  // both inside and outside were exercised
    EXPECT_LT(inside, compared);
  }
}

TEST(GridIndex, NeighboursAtCornersEdgesAndInterior) {
  const GridIndex grid(kSmall);  // 4 rows x 5 cols
  EXPECT_EQ(grid.Neighbours(grid.Index(0, 0)), (std::vector<int>{1, 5, 6}));
  EXPECT_EQ(grid.Neighbours(grid.Index(0, 4)), (std::vector<int>{3, 8, 9}));
  EXPECT_EQ(grid.Neighbours(grid.Index(3, 0)), (std::vector<int>{10, 11, 16}));
  EXPECT_EQ(grid.Neighbours(grid.Index(3, 4)), (std::vector<int>{13, 14, 18}));
  EXPECT_EQ(grid.Neighbours(grid.Index(0, 2)), (std::vector<int>{1, 3, 6, 7, 8}));
  EXPECT_EQ(grid.Neighbours(grid.Index(2, 0)), (std::vector<int>{5, 6, 11, 15, 16}));
  EXPECT_EQ(grid.Neighbours(grid.Index(1, 2)), (std::vector<int>{1, 2, 3, 6, 8, 11, 12, 13}));
  EXPECT_TRUE(grid.Neighbours(-1).empty());
  EXPECT_TRUE(grid.Neighbours(grid.cell_count()).empty());
  EXPECT_TRUE(GridIndex(GridGeometry{{28.2, 112.9}, 500, 1, 1}).Neighbours(0).empty());
  EXPECT_EQ(GridIndex(GridGeometry{{28.2, 112.9}, 500, 1, 3}).Neighbours(1), (std::vector<int>{0, 2}));
}

TEST(GridIndex, NeighboursMatchRowColumnArithmeticEverywhere) {
  for (const GridGeometry& g : {kSmall, GridGeometry{{28.05, 112.8}, 500, 37, 23}}) {
    const GridIndex grid(g);
    for (int i = 0; i < grid.cell_count(); ++i) {
      std::vector<int> want;
      for (int r = grid.Row(i) - 1; r <= grid.Row(i) + 1; ++r) {
        for (int c = grid.Col(i) - 1; c <= grid.Col(i) + 1; ++c) {
          if (r >= 0 && c >= 0 && r < g.rows && c < g.cols && grid.Index(r, c) != i) want.push_back(grid.Index(r, c));
        }
      }
      ASSERT_EQ(grid.Neighbours(i), want) << i;
    }
  }
}

TEST(GridIndex, PolygonCornersRunSouthWestSouthEastNorthEastNorthWest) {
  const GridIndex grid(kSmall);
  const double h = CellHeightDeg(kSmall), w = CellWidthDeg(kSmall);
  const int i = grid.Index(2, 3);
  const std::vector<LatLon> c = grid.Polygon(i);
  ASSERT_EQ(c.size(), 4u);
  const double south = kSmall.origin.lat + 2 * h, north = kSmall.origin.lat + 3 * h;
  const double west = kSmall.origin.lon + 3 * w, east = kSmall.origin.lon + 4 * w;
  EXPECT_DOUBLE_EQ(c[0].lat, south);
  EXPECT_DOUBLE_EQ(c[0].lon, west);
  EXPECT_DOUBLE_EQ(c[1].lat, south);
  EXPECT_DOUBLE_EQ(c[1].lon, east);
  EXPECT_DOUBLE_EQ(c[2].lat, north);
  EXPECT_DOUBLE_EQ(c[2].lon, east);
  EXPECT_DOUBLE_EQ(c[3].lat, north);
  EXPECT_DOUBLE_EQ(c[3].lon, west);
  // The centre lies in the middle, and neighbours share corners exactly.
  EXPECT_NEAR(grid.Center(i).lat, (south + north) / 2, 1e-12);
  EXPECT_NEAR(grid.Center(i).lon, (west + east) / 2, 1e-12);
  const std::vector<LatLon> ne = grid.Polygon(grid.Index(3, 4));
  EXPECT_EQ(ne[0].lat, c[2].lat);
  EXPECT_EQ(ne[0].lon, c[2].lon);
  // A cell is 500 m square on the ground (to the precision of 111320 m/degree).
  EXPECT_NEAR(DistanceMeters(grid.Polygon(0)[0], grid.Polygon(0)[1]), 500, 1.0);
  EXPECT_NEAR(DistanceMeters(grid.Polygon(0)[0], grid.Polygon(0)[3]), 500, 1.0);
  EXPECT_TRUE(grid.Polygon(-1).empty());
  EXPECT_TRUE(grid.Polygon(grid.cell_count()).empty());
}

TEST(GridIndex, DistanceToCellMeters) {
  const GridIndex grid(kSmall);
  const int i = grid.Index(1, 1);
  const std::vector<LatLon> c = grid.Polygon(i);
  EXPECT_EQ(grid.DistanceToCellMeters(grid.Center(i), i), 0);
  EXPECT_EQ(grid.DistanceToCellMeters(c[0], i), 0);
  EXPECT_EQ(grid.DistanceToCellMeters(c[2], i), 0);  // closed: edges are at distance 0
  EXPECT_EQ(grid.DistanceToCellMeters({(c[0].lat + c[2].lat) / 2, c[2].lon}, i), 0);
  // Straight north of the cell: the distance along the meridian.
  const double dlat = 100 / 111320.0;
  const LatLon north{c[2].lat + dlat, (c[0].lon + c[2].lon) / 2};
  EXPECT_NEAR(grid.DistanceToCellMeters(north, i), DistanceMeters(north, {c[2].lat, north.lon}), 1e-9);
  EXPECT_NEAR(grid.DistanceToCellMeters(north, i), 100, 0.5);
  // Diagonally off a corner: the distance to that corner.
  const LatLon south_west{c[0].lat - dlat, c[0].lon - dlat};
  EXPECT_DOUBLE_EQ(grid.DistanceToCellMeters(south_west, i), DistanceMeters(south_west, c[0]));
  // The centre of a neighbour is one and a half cells from the far neighbour.
  EXPECT_NEAR(grid.DistanceToCellMeters(grid.Center(grid.Index(1, 0)), grid.Index(1, 2)), 750, 2);
  EXPECT_EQ(grid.DistanceToCellMeters(grid.Center(i), -1), kInf);
  EXPECT_EQ(grid.DistanceToCellMeters(grid.Center(i), grid.cell_count()), kInf);
}

TEST(GridIndex, CellsWithinRadiusZeroIsTheContainingCell) {
  const GridIndex grid(kSmall);
  const int i = grid.Index(2, 2);
  const LatLon sw = grid.Polygon(i)[0];
  for (double r : {0.0, -5.0, kNaN, -kInf}) {
    EXPECT_EQ(grid.CellsWithin(grid.Center(i), r), (std::vector<int>{i})) << r;
    EXPECT_EQ(grid.CellsWithin(sw, r), (std::vector<int>{i})) << "a corner belongs to one cell only";
    EXPECT_TRUE(grid.CellsWithin({0, 0}, r).empty());
  }
  // The smallest positive radius already reaches every cell that touches a corner.
  EXPECT_EQ(grid.CellsWithin(sw, 1e-6), (std::vector<int>{6, 7, 11, 12}));
}

TEST(GridIndex, CellsWithinReachesANeighbourOnlyPastItsEdge) {
  const GridIndex grid(kSmall);
  const int i = grid.Index(2, 2), east = grid.Index(2, 3);
  const std::vector<LatLon> c = grid.Polygon(i);
  // 80 % of the way east across the cell, halfway up: 100 m from the east
  // neighbour, 250 m from the north and south ones, 400 m from the west one.
  const LatLon p{(c[0].lat + c[2].lat) / 2, c[0].lon + 0.8 * (c[2].lon - c[0].lon)};
  const double to_east = grid.DistanceToCellMeters(p, east);
  EXPECT_NEAR(to_east, 100, 1);
  EXPECT_EQ(grid.CellsWithin(p, to_east * 0.999), (std::vector<int>{i}));
  EXPECT_EQ(grid.CellsWithin(p, to_east), (std::vector<int>{i, east}));  // "within" includes the boundary
  EXPECT_EQ(grid.CellsWithin(p, to_east * 1.001), (std::vector<int>{i, east}));
  const double to_north = grid.DistanceToCellMeters(p, grid.Index(3, 2));
  EXPECT_NEAR(to_north, 250, 1);
  // The diagonal neighbours' corners are sqrt(100^2 + 250^2) m away.
  EXPECT_EQ(grid.CellsWithin(p, to_north + 0.01), (std::vector<int>{grid.Index(1, 2), i, east, grid.Index(3, 2)}));
  EXPECT_EQ(grid.CellsWithin(p, 270), (std::vector<int>{grid.Index(1, 2), grid.Index(1, 3), i, east, grid.Index(3, 2),
                                                         grid.Index(3, 3)}));
}

TEST(GridIndex, CellsWithinFromOutsideTheGridReachesIn) {
  const GridIndex grid(kSmall);
  const std::vector<LatLon> c = grid.Polygon(grid.Index(2, 0));
  const LatLon p{(c[0].lat + c[2].lat) / 2, c[0].lon - 100 / (111320.0 * std::cos(c[0].lat * kPi / 180))};
  ASSERT_FALSE(grid.CellAt(p));
  const double d = grid.DistanceToCellMeters(p, grid.Index(2, 0));
  EXPECT_NEAR(d, 100, 1);
  EXPECT_TRUE(grid.CellsWithin(p, d - 0.01).empty());
  EXPECT_EQ(grid.CellsWithin(p, d + 0.01), (std::vector<int>{grid.Index(2, 0)}));
  EXPECT_EQ(grid.CellsWithin(p, 300), (std::vector<int>{grid.Index(1, 0), grid.Index(2, 0), grid.Index(3, 0)}));
}

TEST(GridIndex, CellsWithinAgreesWithBruteForce) {
  std::mt19937_64 rng(7);
  std::uniform_real_distribution<double> radius(-200, 3000);
  // Changsha, Sydney, and far north where a cell is wide in degrees.
  for (const GridGeometry& g : {GridGeometry{{28.2, 112.9}, 500, 1, 1}, kSmall,
                                GridGeometry{{28.05, 112.8}, 300, 40, 60}, GridGeometry{{-33.9, 151.1}, 250, 30, 20},
                                GridGeometry{{69.6, 18.9}, 400, 25, 25}}) {
    const GridIndex grid(g);
    for (int i = 0; i < 1500; ++i) {
      const LatLon p = RandomPointAround(g, rng);
      const double r = radius(rng);
      ASSERT_EQ(grid.CellsWithin(p, r), BruteCellsWithin(grid, p, r))
          << g.rows << "x" << g.cols << " at " << p.lat << "," << p.lon << " r=" << r;
    }
  }
}

TEST(GridIndex, CellsWithinHugeRadiusCoversTheWholeGrid) {
  const GridIndex grid(kSmall);
  std::vector<int> all(static_cast<size_t>(grid.cell_count()));
  for (int i = 0; i < grid.cell_count(); ++i) all[static_cast<size_t>(i)] = i;
  EXPECT_EQ(grid.CellsWithin({0, 0}, 2.1e7), all);  // from the other side of the world
  EXPECT_EQ(grid.CellsWithin({89.99, -70}, 1e7), all);  // from near the pole
  EXPECT_EQ(grid.CellsWithin(grid.Center(0), kInf), all);
  EXPECT_TRUE(grid.CellsWithin({-28.17, -67.05}, 1e6).empty());  // antipode, 1000 km
}

TEST(GridIndex, CopiesAndMovesAnswerTheSame) {
  const GridIndex original(kSmall);
  GridIndex copy = original;
  GridIndex moved_from(kSmall);
  const GridIndex moved = std::move(moved_from);
  GridIndex assigned;
  assigned = original;
  for (const GridIndex* g : std::vector<const GridIndex*>{&copy, &moved, &assigned}) {
    EXPECT_EQ(g->cell_count(), original.cell_count());
    EXPECT_EQ(g->geometry().rows, kSmall.rows);
    for (int i = 0; i < original.cell_count(); ++i) {
      EXPECT_EQ(g->CellAt(original.Center(i)), i);
      EXPECT_EQ(g->Neighbours(i), original.Neighbours(i));
    }
  }
}

TEST(GridIndex, ConcurrentReadersSeeTheSameAnswers) {
  const GridIndex grid(kLarge);
  std::vector<std::thread> readers;
  std::vector<int> wrong(4, 0);
  for (int t = 0; t < 4; ++t) {
    readers.emplace_back([&grid, &wrong, t] {
      std::mt19937_64 rng(static_cast<uint64_t>(t));
      for (int i = 0; i < 20000; ++i) {
        const int cell = static_cast<int>(rng() % static_cast<uint64_t>(grid.cell_count()));
        if (grid.CellAt(grid.Center(cell)) != cell) ++wrong[static_cast<size_t>(t)];
        if (grid.Neighbours(cell).size() > 8) ++wrong[static_cast<size_t>(t)];
      }
    });
  }
  for (auto& r : readers) r.join();
  EXPECT_EQ(wrong, (std::vector<int>{0, 0, 0, 0}));
}

}  // namespace
}  // namespace cityloop
