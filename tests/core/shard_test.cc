#include "core/shard.h"

#include <gtest/gtest.h>

#include <set>

namespace cityloop {
namespace {

TEST(Shard, OneShardKeepsTheUnshardedNumbers) {
  EXPECT_EQ(ShardSequence(1, {}), 1u);
  EXPECT_EQ(ShardSequence(123, {0, 1}), 123u);
  EXPECT_EQ(ShardOfCaseId("CL-20261128-000123", 1), 0);
  EXPECT_EQ(ShardOfKey("anything", 1), 0);
}

TEST(Shard, ShardsTakeDisjointNumbersThatNameThem) {
  std::set<uint64_t> taken;
  for (int shard = 0; shard < 4; ++shard) {
    for (uint64_t n = 1; n <= 50; ++n) {
      const uint64_t number = ShardSequence(n, {shard, 4});
      EXPECT_TRUE(taken.insert(number).second) << number << " taken twice";
      char id[32];
      std::snprintf(id, sizeof id, "CL-20261128-%06llu", static_cast<unsigned long long>(number));
      EXPECT_EQ(ShardOfCaseId(id, 4), shard) << id;
    }
  }
}

TEST(Shard, CaseIdsWithoutANumberNameNoShard) {
  EXPECT_EQ(ShardOfCaseId("", 4), std::nullopt);
  EXPECT_EQ(ShardOfCaseId("CL-20261128-", 4), std::nullopt);
  EXPECT_EQ(ShardOfCaseId("CL-20261128-12a", 4), std::nullopt);
  EXPECT_EQ(ShardOfCaseId("CL-20261128-123456789012345678901", 4), std::nullopt);
  EXPECT_EQ(ShardOfCaseId("7", 4), std::nullopt);
}

// Routing must agree across machines and builds: FNV-1a's published values.
TEST(Shard, StableHashIsFnv1a) {
  EXPECT_EQ(StableHash(""), 2166136261u);
  EXPECT_EQ(StableHash("a"), 0xe40c292cu);
  EXPECT_EQ(StableHash("foobar"), 0xbf9cf968u);
  EXPECT_EQ(ShardOfKey("foobar", 7), static_cast<int>(0xbf9cf968u % 7));
}

}  // namespace
}  // namespace cityloop
