// A shard's changelog (app/shard_changelog.h) on the embedded broker: a
// store opened on another machine (another directory) is rebuilt equal to
// the one that wrote it; an old owner that goes on writing after losing the
// shard does not get into the next restore; a store that is current is kept.
#include "app/shard_changelog.h"

#include <gtest/gtest.h>

#include <map>
#include <string>

#include "ingest/broker.h"
#include "tests/support/test_city.h"
#include "tests/support/test_support.h"

namespace cityloop {
namespace {

class ShardChangelogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Config cfg = testing::TestConfig();
    cfg.scale.shards = 2;
    city_ = testing::TestCity(cfg);
    auto broker = ingest::EmbeddedBroker::Start(ingest::BrokerOptionsFor(cfg.kafka, cfg.scale.shards));
    ASSERT_TRUE(broker.ok()) << broker.status().ToString();
    broker_ = std::move(broker).value();
  }

  app::ShardChangelog::Opened Open(const std::string& name) {
    auto opened = app::ShardChangelog::Open(city_, broker_->bootstrap(), /*partition=*/1, dir_.file(name), {},
                                            &metrics_);
    EXPECT_TRUE(opened.ok()) << opened.status().ToString();
    return opened.ok() ? std::move(opened).value() : app::ShardChangelog::Opened{};
  }

  static void Write(storage::Store& store, const std::string& tag, int n) {
    for (int i = 0; i < n; ++i) {
      storage::WriteBatch wb = store.NewBatch();
      wb.PutCase("CL-" + tag + "-" + std::to_string(i), std::string(300, 'x') + tag);
      wb.PutState("dev/" + std::to_string(i % 7), tag + std::to_string(i));
      wb.PutOffset({"city.sensors", 0}, i + 1);
      ASSERT_TRUE(store.Write(std::move(wb)).ok());
    }
  }

  // Cases, state and offsets, as one map.
  static std::map<std::string, std::string> Contents(const storage::Store& store) {
    std::map<std::string, std::string> out;
    EXPECT_TRUE(store.ForEachCase([&](std::string_view k, std::string_view v) {
      out["c/" + std::string(k)] = v;
      return true;
    }).ok());
    EXPECT_TRUE(store.ForEachState("", [&](std::string_view k, std::string_view v) {
      out["s/" + std::string(k)] = v;
      return true;
    }).ok());
    for (const auto& [tp, next] : store.AllOffsets()) out["o/" + tp.topic] = std::to_string(next);
    return out;
  }

  testing::TempDir dir_;
  std::shared_ptr<const CityModel> city_;
  std::unique_ptr<ingest::EmbeddedBroker> broker_;
  MetricsRegistry metrics_;
};

TEST_F(ShardChangelogTest, AnotherDirectoryIsRebuiltEqualAndAZombieOwnerIsIgnored) {
  auto a = Open("machine-a");
  ASSERT_TRUE(a.store);
  EXPECT_FALSE(a.restored);  // nothing in the changelog yet
  Write(*a.store, "a", 40);
  ASSERT_TRUE(a.changelog->Flush(10000).ok());

  auto b = Open("machine-b");
  ASSERT_TRUE(b.store);
  EXPECT_TRUE(b.restored);
  EXPECT_EQ(Contents(*b.store), Contents(*a.store));

  // a has not noticed it lost the shard and writes on; b writes too.
  Write(*a.store, "zombie", 5);
  ASSERT_TRUE(a.changelog->Flush(10000).ok());
  Write(*b.store, "b", 10);
  ASSERT_TRUE(b.changelog->Flush(10000).ok());
  const auto expected = Contents(*b.store);

  auto c = Open("machine-c");
  ASSERT_TRUE(c.store);
  EXPECT_TRUE(c.restored);
  EXPECT_EQ(Contents(*c.store), expected);
  for (const auto& [k, v] : Contents(*c.store)) EXPECT_EQ(k.find("zombie"), std::string::npos) << k;

  // c's own directory, reopened, is current: kept, not rebuilt.
  Write(*c.store, "c", 3);
  ASSERT_TRUE(c.changelog->Flush(10000).ok());
  const auto before = Contents(*c.store);
  c = {};
  auto again = Open("machine-c");
  ASSERT_TRUE(again.store);
  EXPECT_FALSE(again.restored);
  EXPECT_EQ(Contents(*again.store), before);
}

TEST_F(ShardChangelogTest, ChangeSetsLargerThanARecordTravelInParts) {
  auto a = Open("machine-a");
  ASSERT_TRUE(a.store);
  storage::WriteBatch wb = a.store->NewBatch();
  for (int i = 0; i < 5; ++i) {
    wb.PutSnapshot("snap-" + std::to_string(i), std::string(300 << 10, static_cast<char>('a' + i)));
  }
  wb.PutCase("CL-big", "{}");
  ASSERT_TRUE(a.store->Write(std::move(wb)).ok());
  ASSERT_TRUE(a.changelog->Flush(10000).ok());
  auto b = Open("machine-b");
  ASSERT_TRUE(b.store);
  EXPECT_TRUE(b.restored);
  for (int i = 0; i < 5; ++i) {
    auto jpeg = b.store->GetSnapshot("snap-" + std::to_string(i));
    ASSERT_TRUE(jpeg.ok() && *jpeg);
    EXPECT_EQ(**jpeg, std::string(300 << 10, static_cast<char>('a' + i)));
  }
  auto big = b.store->GetCase("CL-big");
  EXPECT_TRUE(big.ok() && big->has_value());
}

}  // namespace
}  // namespace cityloop
