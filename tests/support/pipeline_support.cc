#include "tests/support/pipeline_support.h"

#include <gtest/gtest.h>

#include <atomic>

#include "ingest/offset_query.h"
#include "tests/support/test_support.h"

namespace cityloop::testing {

std::vector<ingest::Message> ReadTopic(const std::string& bootstrap, const std::string& topic) {
  std::vector<ingest::Message> out;
  auto query = ingest::OffsetQuery::Create(bootstrap);
  EXPECT_TRUE(query.ok()) << query.status().ToString();
  if (!query.ok()) return out;
  auto highs = (*query)->HighWatermarks(topic);
  EXPECT_TRUE(highs.ok()) << highs.status().ToString();
  if (!highs.ok()) return out;
  int64_t expected = 0;
  for (const auto& [p, h] : *highs) expected += h;

  ingest::ConsumerOptions co;
  co.bootstrap = bootstrap;
  co.topics = {topic};
  co.assign_all_partitions = true;
  auto consumer = ingest::KafkaConsumer::Create(co, [](const std::string&, int32_t) { return std::optional<int64_t>(0); });
  EXPECT_TRUE(consumer.ok()) << consumer.status().ToString();
  if (!consumer.ok()) return out;
  std::map<int32_t, int64_t> next;
  auto reached = [&] {
    for (const auto& [p, h] : *highs) {
      if (next[p] < h) return false;
    }
    return true;
  };
  EXPECT_TRUE(WaitFor([&] {
    std::vector<ingest::Message> batch;
    EXPECT_TRUE((*consumer)->Poll(10000, 100, &batch).ok());
    for (auto& m : batch) {
      next[m.partition] = std::max(next[m.partition], m.offset + 1);
      out.push_back(std::move(m));
    }
    return reached();
  })) << "read " << out.size() << " of " << expected << " messages of " << topic;
  (*consumer)->Close();
  return out;
}

std::vector<nlohmann::json> ParseValues(const std::vector<ingest::Message>& messages) {
  std::vector<nlohmann::json> out;
  for (const auto& m : messages) {
    auto j = nlohmann::json::parse(m.value, nullptr, false);
    EXPECT_FALSE(j.is_discarded()) << "not JSON on " << m.topic << ": " << m.value.substr(0, 200);
    if (!j.is_discarded()) out.push_back(std::move(j));
  }
  return out;
}

std::vector<nlohmann::json> OfType(const std::vector<nlohmann::json>& events, const std::string& type) {
  std::vector<nlohmann::json> out;
  for (const auto& e : events) {
    if (e.value("type", "") == type) out.push_back(e);
  }
  return out;
}

}  // namespace cityloop::testing
