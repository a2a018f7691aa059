// Where the shard router sends each kind of input (ShardRouter::ShardOf).
#include "app/shard_router.h"

#include <gtest/gtest.h>

#include "core/shard.h"
#include "tests/support/test_city.h"

namespace cityloop {
namespace {

ingest::Message Msg(const std::string& topic, const std::string& key, const std::string& value = "{}") {
  ingest::Message m;
  m.topic = topic;
  m.key = key;
  m.value = value;
  return m;
}

class ShardRouting : public ::testing::Test {
 protected:
  std::shared_ptr<const CityModel> city_ = testing::TestCity();
  const TopicNames& topics_ = city_->config().kafka.topics;
  int ShardOf(const ingest::Message& m, int shards = 2) { return app::ShardRouter::ShardOf(*city_, m, shards); }
};

// The test city: districts west (cols 0-1) then east (cols 2-3); they take shards 0 and 1.
TEST_F(ShardRouting, RegisteredDevicesAndCamerasGoToTheirDistrictsShard) {
  EXPECT_EQ(ShardOf(Msg(topics_.sensors, "wl-1")), 0);   // cell (0, 0): west
  EXPECT_EQ(ShardOf(Msg(topics_.sensors, "gas-1")), 0);  // cell (1, 1): west
  EXPECT_EQ(ShardOf(Msg(topics_.sensors, "wl-2")), 1);   // cell (2, 3): east
  EXPECT_EQ(ShardOf(Msg(topics_.camera_detections, "cam-031")), 1);  // cell (1, 2): east
  EXPECT_EQ(ShardOf(Msg(topics_.camera_frames, "cam-031")), 1);
  // With more shards than districts, the districts still take distinct shards.
  EXPECT_EQ(ShardOf(Msg(topics_.sensors, "wl-1"), 5), 0);
  EXPECT_EQ(ShardOf(Msg(topics_.sensors, "wl-2"), 5), 1);
}

TEST_F(ShardRouting, UnregisteredDevicesAndReportsGoWhereTheySayTheyAre) {
  const LatLon east = testing::TestCellCenter(3, 3), west = testing::TestCellCenter(3, 0);
  auto at = [](LatLon p) {
    return "{\"lat\":" + std::to_string(p.lat) + ",\"text\":\"x\",\"lon\":" + std::to_string(p.lon) + "}";
  };
  EXPECT_EQ(ShardOf(Msg(topics_.sensors, "new-device", at(east))), 1);
  EXPECT_EQ(ShardOf(Msg(topics_.reports, "r-1", at(west))), 0);
  EXPECT_EQ(ShardOf(Msg(topics_.reports, "r-2", at(east))), 1);
  // Nowhere in the city, or no JSON at all: by key; the shard's decoder dead-letters it.
  EXPECT_EQ(ShardOf(Msg(topics_.reports, "r-3", "{\"lat\":0,\"lon\":0}")), ShardOfKey("r-3", 2));
  EXPECT_EQ(ShardOf(Msg(topics_.sensors, "junk", "not json")), ShardOfKey("junk", 2));
}

TEST_F(ShardRouting, CommandsGoToTheShardTheirCaseIdNames) {
  EXPECT_EQ(ShardOf(Msg(topics_.commands, "CL-20261128-000007",
                        R"({"command_id":"c-1","case_id":"CL-20261128-000007","action":"acknowledge"})"), 4),
            3);
  EXPECT_EQ(ShardOf(Msg(topics_.commands, "k", R"({"case_id":"CL-20261128-000008"})"), 4), 0);
  // No usable case id: by key (that shard rejects it with the reason).
  EXPECT_EQ(ShardOf(Msg(topics_.commands, "k", R"({"case_id":42})"), 4), ShardOfKey("k", 4));
}

TEST_F(ShardRouting, UnitStatusGoesToEveryShard) {
  EXPECT_EQ(ShardOf(Msg(topics_.units, "drain-1")), -1);
}

}  // namespace
}  // namespace cityloop
