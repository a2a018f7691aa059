// Change sets (Store::SetChangeListener / ApplyChangeSet / ExportChangeSets):
// what a shard's changelog carries. A copy built from them equals the
// original in every column family.
#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "storage/store.h"
#include "tests/support/test_support.h"

namespace cityloop::storage {
namespace {

using cityloop::testing::TempDir;

std::unique_ptr<Store> Open(const std::string& path) {
  auto store = Store::Open(path);
  EXPECT_TRUE(store.ok()) << store.status().ToString();
  return store.ok() ? std::move(store).value() : nullptr;
}

// Everything a store holds that a copy must have too.
std::map<std::string, std::string> Contents(const Store& s) {
  std::map<std::string, std::string> out;
  EXPECT_TRUE(s.ForEachCase([&](std::string_view id, std::string_view v) {
    out["case/" + std::string(id)] = v;
    return true;
  }).ok());
  EXPECT_TRUE(s.ForEachState("", [&](std::string_view k, std::string_view v) {
    out["state/" + std::string(k)] = v;
    return true;
  }).ok());
  EXPECT_TRUE(s.ForEachOutbox([&](const OutboxRecord& r) {
    out["outbox/" + std::to_string(r.seq)] = r.value;
    return true;
  }).ok());
  EXPECT_TRUE(s.ForEachEventAfter(0, [&](uint64_t seq, std::string_view topic, std::string_view j) {
    out["event/" + std::to_string(seq)] = std::string(topic) + " " + std::string(j);
    return true;
  }).ok());
  EXPECT_TRUE(s.ForEachAudit("CL-1", [&](uint32_t seq, std::string_view j) {
    out["audit/" + std::to_string(seq)] = j;
    return true;
  }).ok());
  for (const auto& [tp, next] : s.AllOffsets()) out["offset/" + tp.topic] = std::to_string(next);
  auto snap = s.GetSnapshot("snap-1");
  if (snap.ok() && *snap) out["snapshot/snap-1"] = **snap;
  return out;
}

void WriteSomething(Store& s, int round) {
  WriteBatch wb = s.NewBatch();
  wb.PutCase("CL-" + std::to_string(round), "{\"round\":" + std::to_string(round) + "}");
  wb.PutAudit("CL-1", static_cast<uint32_t>(round), "{\"a\":" + std::to_string(round) + "}");
  wb.PutState("dev/x", "v" + std::to_string(round));
  if (round == 2) wb.DeleteState("dev/gone");
  if (round == 1) wb.PutState("dev/gone", "soon");
  wb.PutOffset({"city.sensors", 0}, round * 10);
  wb.PutOutbox({static_cast<uint64_t>(round), "cityloop.cases", "k", "out" + std::to_string(round), {}});
  wb.PutEvent(static_cast<uint64_t>(round), "cityloop.cases", "e" + std::to_string(round));
  if (round == 3) wb.DeleteEventsBefore(2);
  wb.PutSnapshot("snap-1", std::string("\xff\xd8 jpeg \0 bytes", 14));
  ASSERT_TRUE(s.Write(std::move(wb)).ok());
}

TEST(ChangeSets, EveryWriteIsNumberedAndAReplayOfItsChangeSetsGivesAnEqualStore) {
  TempDir dir;
  auto source = Open(dir.file("source"));
  std::vector<std::pair<uint64_t, std::string>> changes;
  ASSERT_TRUE(source->SetChangeListener([&](uint64_t seq, std::string_view cs) {
    changes.emplace_back(seq, std::string(cs));
  }).ok());
  for (int round = 1; round <= 3; ++round) WriteSomething(*source, round);
  ASSERT_TRUE(source->DeleteOutbox({1, 2}).ok());
  ASSERT_EQ(changes.size(), 4u);
  for (size_t i = 0; i < changes.size(); ++i) EXPECT_EQ(changes[i].first, i + 1);
  EXPECT_EQ(source->change_seq(), 4u);

  auto copy = Open(dir.file("copy"));
  for (const auto& [seq, cs] : changes) ASSERT_TRUE(copy->ApplyChangeSet(cs).ok());
  EXPECT_EQ(Contents(*copy), Contents(*source));
  EXPECT_EQ(copy->change_seq(), 4u);  // the number travels with the change
  const auto contents = Contents(*copy);
  EXPECT_FALSE(contents.count("state/dev/gone"));
  EXPECT_FALSE(contents.count("event/1"));  // the range delete
  EXPECT_FALSE(contents.count("outbox/1"));
  EXPECT_TRUE(contents.count("outbox/3"));
}

TEST(ChangeSets, AnExportRebuildsTheStoreAndNumberingContinuesAfterReopen) {
  TempDir dir;
  {
    auto source = Open(dir.file("source"));
    ASSERT_TRUE(source->SetChangeListener([](uint64_t, std::string_view) {}).ok());
    for (int round = 1; round <= 3; ++round) WriteSomething(*source, round);
  }
  auto source = Open(dir.file("source"));
  uint64_t last = 0;
  ASSERT_TRUE(source->SetChangeListener([&](uint64_t seq, std::string_view) { last = seq; }).ok());
  EXPECT_EQ(source->change_seq(), 3u);
  WriteSomething(*source, 4);
  EXPECT_EQ(last, 4u);

  auto copy = Open(dir.file("copy"));
  size_t chunks = 0;
  ASSERT_TRUE(source->ExportChangeSets(64, [&](std::string_view cs) {
    ++chunks;
    return copy->ApplyChangeSet(cs);
  }).ok());
  EXPECT_GT(chunks, 3u);  // small chunks: the export is split
  EXPECT_EQ(Contents(*copy), Contents(*source));
  EXPECT_EQ(copy->change_seq(), 4u);
  EXPECT_EQ(copy->schema_version(), kSchemaVersion);
}

TEST(ChangeSets, DamagedChangeSetsAreRefusedWhole) {
  TempDir dir;
  auto source = Open(dir.file("source"));
  std::string change;
  ASSERT_TRUE(source->SetChangeListener([&](uint64_t, std::string_view cs) { change = cs; }).ok());
  WriteSomething(*source, 1);
  ASSERT_FALSE(change.empty());
  auto copy = Open(dir.file("copy"));
  EXPECT_EQ(copy->ApplyChangeSet(change.substr(0, change.size() - 3)).code(), StatusCode::kDataLoss);
  std::string bad_family = change;
  bad_family[1] = static_cast<char>(100);
  EXPECT_EQ(copy->ApplyChangeSet(bad_family).code(), StatusCode::kDataLoss);
  std::string bad_op = change;
  bad_op[0] = static_cast<char>(9);
  EXPECT_EQ(copy->ApplyChangeSet(bad_op).code(), StatusCode::kDataLoss);
  EXPECT_TRUE(Contents(*copy).empty());  // nothing half-applied
}

}  // namespace
}  // namespace cityloop::storage
