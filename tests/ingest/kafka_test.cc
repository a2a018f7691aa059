#include "ingest/kafka.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <mutex>
#include <set>

#include "ingest/broker.h"
#include "tests/support/test_support.h"

namespace cityloop::ingest {
namespace {

using cityloop::testing::WaitFor;

// The mock cluster answers a group's first JoinGroup after 3 s and a later
// rebalance after session.timeout.ms - 1 s. A session timeout below 3 s
// expires the member while it waits for its first join; 4 s keeps the
// second member of a group waiting 3 s instead of the default 44 s.
const std::map<std::string, std::string> kFastGroup = {{"session.timeout.ms", "4000"},
                                                       {"heartbeat.interval.ms", "500"}};

class KafkaTest : public ::testing::Test {
 protected:
  void StartBroker(std::vector<std::pair<std::string, int>> topics) {
    BrokerOptions o;
    o.topics = std::move(topics);
    auto b = EmbeddedBroker::Start(o);
    ASSERT_TRUE(b.ok()) << b.status().ToString();
    broker_ = std::move(b).value();
  }

  std::unique_ptr<KafkaProducer> MakeProducer(DeliveryCallback cb = nullptr) {
    ProducerOptions po;
    po.bootstrap = broker_->bootstrap();
    po.linger_ms = 1;
    auto p = KafkaProducer::Create(po, std::move(cb));
    EXPECT_TRUE(p.ok()) << p.status().ToString();
    return p.ok() ? std::move(p).value() : nullptr;
  }

  std::unique_ptr<KafkaConsumer> MakeConsumer(const std::string& group, std::vector<std::string> topics,
                                              OffsetLookup lookup, RebalanceListener listener = nullptr) {
    ConsumerOptions co;
    co.bootstrap = broker_->bootstrap();
    co.group_id = group;
    co.topics = std::move(topics);
    co.properties = kFastGroup;
    auto c = KafkaConsumer::Create(co, std::move(lookup), std::move(listener));
    EXPECT_TRUE(c.ok()) << c.status().ToString();
    return c.ok() ? std::move(c).value() : nullptr;
  }

  // Polls until at least n messages arrived (or the test deadline).
  static std::vector<Message> PollUntil(KafkaConsumer* c, size_t n) {
    std::vector<Message> out;
    EXPECT_TRUE(WaitFor([&] {
      Status st = c->Poll(100, 200, &out);
      EXPECT_TRUE(st.ok()) << st.ToString();
      return out.size() >= n;
    }))
        << "got " << out.size() << " of " << n;
    return out;
  }

  std::unique_ptr<EmbeddedBroker> broker_;
};

TEST(Message, HeaderLooksUpByName) {
  Message m;
  m.headers = {{"a", "1"}, {"b", "2"}, {"a", "3"}};
  ASSERT_NE(m.header("a"), nullptr);
  EXPECT_EQ(*m.header("a"), "1");
  EXPECT_EQ(*m.header("b"), "2");
  EXPECT_EQ(m.header("c"), nullptr);
}

TEST_F(KafkaTest, RejectsBadProperties) {
  StartBroker({});
  ConsumerOptions co;
  co.bootstrap = broker_->bootstrap();
  co.topics = {"t"};
  co.properties = {{"no.such.property", "1"}};
  auto c = KafkaConsumer::Create(co, nullptr);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), StatusCode::kInvalidArgument);
  ProducerOptions po;
  po.bootstrap = broker_->bootstrap();
  po.properties = {{"linger.ms", "not-a-number"}};
  EXPECT_FALSE(KafkaProducer::Create(po).ok());
}

TEST_F(KafkaTest, ProduceConsumeRoundTripWithKeysAndHeaders) {
  StartBroker({{"rt", 2}});
  std::mutex mu;
  std::map<uint64_t, Status> delivered;
  auto producer = MakeProducer([&](uint64_t opaque, const Status& st) {
    std::lock_guard<std::mutex> lock(mu);
    delivered[opaque] = st;
  });
  ASSERT_TRUE(producer);
  const int n = 6;
  for (int i = 0; i < n; ++i) {
    ASSERT_TRUE(producer
                    ->Produce("rt", "dev-" + std::to_string(i % 3), "value-" + std::to_string(i),
                              {{"x-seq", std::to_string(i)}, {"x-empty", ""}}, 1000 + static_cast<uint64_t>(i))
                    .ok());
  }
  ASSERT_TRUE(producer->Flush(10000).ok());
  EXPECT_EQ(producer->InFlight(), 0u);
  {
    std::lock_guard<std::mutex> lock(mu);
    ASSERT_EQ(delivered.size(), static_cast<size_t>(n));
    for (const auto& [opaque, st] : delivered) {
      EXPECT_GE(opaque, 1000u);
      EXPECT_TRUE(st.ok()) << st.ToString();
    }
  }

  std::vector<std::pair<bool, std::vector<PartitionOffset>>> events;
  auto consumer = MakeConsumer(
      "g-rt", {"rt"}, [](const std::string&, int32_t) { return std::optional<int64_t>(); },
      [&](bool assigned, const std::vector<PartitionOffset>& parts) { events.emplace_back(assigned, parts); });
  ASSERT_TRUE(consumer);
  auto msgs = PollUntil(consumer.get(), n);
  ASSERT_EQ(msgs.size(), static_cast<size_t>(n));

  std::map<std::string, int32_t> partition_of_key;
  std::set<std::string> values;
  for (const auto& m : msgs) {
    EXPECT_EQ(m.topic, "rt");
    EXPECT_GE(m.offset, 0);
    EXPECT_GT(m.timestamp_ms, 0);
    values.insert(m.value);
    const int seq = std::stoi(m.value.substr(6));
    EXPECT_EQ(m.key, "dev-" + std::to_string(seq % 3));
    ASSERT_NE(m.header("x-seq"), nullptr);
    EXPECT_EQ(*m.header("x-seq"), std::to_string(seq));
    ASSERT_NE(m.header("x-empty"), nullptr);
    EXPECT_EQ(*m.header("x-empty"), "");
    // Same key, same partition.
    auto [it, inserted] = partition_of_key.emplace(m.key, m.partition);
    if (!inserted) {
      EXPECT_EQ(it->second, m.partition) << m.key;
    }
  }
  EXPECT_EQ(values.size(), static_cast<size_t>(n));

  ASSERT_FALSE(events.empty());
  EXPECT_TRUE(events.back().first);
  EXPECT_EQ(events.back().second.size(), 2u);
  auto assignment = consumer->Assignment();
  ASSERT_EQ(assignment.size(), 2u);
  // Positions: after the last message read; -1 where nothing was read yet.
  std::map<int32_t, int64_t> next_by_partition;
  for (const auto& m : msgs) next_by_partition[m.partition] = std::max(next_by_partition[m.partition], m.offset + 1);
  for (const auto& po : assignment) {
    auto it = next_by_partition.find(po.partition);
    EXPECT_EQ(po.next_offset, it == next_by_partition.end() ? -1 : it->second) << po.partition;
  }

  consumer->Close();
  ASSERT_GE(events.size(), 2u);
  EXPECT_FALSE(events.back().first);  // revoked on close
  consumer->Close();                  // idempotent
  std::vector<Message> none;
  EXPECT_FALSE(consumer->Poll(10, 0, &none).ok());
}

TEST_F(KafkaTest, OffsetLookupIsHonouredOnAssignment) {
  StartBroker({{"lk", 1}});
  auto producer = MakeProducer();
  ASSERT_TRUE(producer);
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(producer->Produce("lk", "k", std::to_string(i)).ok());
  ASSERT_TRUE(producer->Flush(10000).ok());

  std::vector<std::pair<std::string, int32_t>> asked;
  std::vector<PartitionOffset> assigned;
  auto consumer = MakeConsumer(
      "g-lk", {"lk"},
      [&](const std::string& topic, int32_t partition) -> std::optional<int64_t> {
        asked.emplace_back(topic, partition);
        return 6;
      },
      [&](bool a, const std::vector<PartitionOffset>& parts) {
        if (a) assigned = parts;
      });
  ASSERT_TRUE(consumer);
  auto msgs = PollUntil(consumer.get(), 4);
  ASSERT_EQ(msgs.size(), 4u);
  EXPECT_EQ(msgs.front().offset, 6);
  EXPECT_EQ(msgs.front().value, "6");
  EXPECT_EQ(msgs.back().offset, 9);
  ASSERT_EQ(asked.size(), 1u);
  EXPECT_EQ(asked[0], (std::pair<std::string, int32_t>("lk", 0)));
  ASSERT_EQ(assigned.size(), 1u);
  EXPECT_EQ(assigned[0].next_offset, 6);
}

// The engine's lag gauge reads partition ends from here, not from the broker.
TEST_F(KafkaTest, CachedHighWatermarkFollowsTheFetches) {
  StartBroker({{"hw", 1}});
  auto producer = MakeProducer();
  ASSERT_TRUE(producer);
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(producer->Produce("hw", "k", std::to_string(i)).ok());
  ASSERT_TRUE(producer->Flush(10000).ok());
  auto consumer = MakeConsumer("g-hw", {"hw"}, [](const std::string&, int32_t) { return std::nullopt; });
  ASSERT_TRUE(consumer);
  EXPECT_EQ(consumer->CachedHighWatermark("hw", 0), std::nullopt);  // nothing fetched yet
  ASSERT_EQ(PollUntil(consumer.get(), 10).size(), 10u);
  EXPECT_EQ(consumer->CachedHighWatermark("hw", 0), std::optional<int64_t>(10));
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(producer->Produce("hw", "k", std::to_string(i)).ok());
  ASSERT_TRUE(producer->Flush(10000).ok());
  ASSERT_EQ(PollUntil(consumer.get(), 5).size(), 5u);
  EXPECT_EQ(consumer->CachedHighWatermark("hw", 0), std::optional<int64_t>(15));
  EXPECT_EQ(consumer->CachedHighWatermark("no-such-topic", 0), std::nullopt);
}

TEST_F(KafkaTest, CommittedOffsetIsTheFallbackForTheNextMember) {
  StartBroker({{"cm", 1}});
  auto producer = MakeProducer();
  ASSERT_TRUE(producer);
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(producer->Produce("cm", "k", std::to_string(i)).ok());
  ASSERT_TRUE(producer->Flush(10000).ok());
  auto none = [](const std::string&, int32_t) { return std::optional<int64_t>(); };

  auto first = MakeConsumer("g-cm", {"cm"}, none);
  ASSERT_TRUE(first);
  auto msgs = PollUntil(first.get(), 10);
  ASSERT_EQ(msgs.size(), 10u);
  EXPECT_EQ(msgs.front().offset, 0);
  EXPECT_TRUE(first->CommitAsync({}).ok());
  ASSERT_TRUE(first->CommitAsync({{"cm", 0, 7}}).ok());
  first->Close();  // waits for the outstanding commit

  auto second = MakeConsumer("g-cm", {"cm"}, none);
  ASSERT_TRUE(second);
  auto rest = PollUntil(second.get(), 3);
  ASSERT_EQ(rest.size(), 3u);
  EXPECT_EQ(rest.front().offset, 7);
}

TEST_F(KafkaTest, PauseStopsFetchingAndResumeRestarts) {
  StartBroker({{"ps", 1}});
  auto producer = MakeProducer();
  ASSERT_TRUE(producer);
  ASSERT_TRUE(producer->Produce("ps", "k", "before").ok());
  ASSERT_TRUE(producer->Flush(10000).ok());
  auto consumer = MakeConsumer("g-ps", {"ps"}, [](const std::string&, int32_t) { return std::optional<int64_t>(); });
  ASSERT_TRUE(consumer);
  ASSERT_EQ(PollUntil(consumer.get(), 1).size(), 1u);

  ASSERT_TRUE(consumer->Pause().ok());
  ASSERT_TRUE(producer->Produce("ps", "k", "after").ok());
  ASSERT_TRUE(producer->Flush(10000).ok());
  std::vector<Message> out;
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(consumer->Poll(10, 100, &out).ok());
  EXPECT_TRUE(out.empty()) << "fetched while paused";

  ASSERT_TRUE(consumer->Resume().ok());
  auto msgs = PollUntil(consumer.get(), 1);
  ASSERT_EQ(msgs.size(), 1u);
  EXPECT_EQ(msgs[0].value, "after");
}

TEST_F(KafkaTest, PollReturnsAtMostMaxMessages) {
  StartBroker({{"mx", 1}});
  auto producer = MakeProducer();
  ASSERT_TRUE(producer);
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(producer->Produce("mx", "k", std::to_string(i)).ok());
  ASSERT_TRUE(producer->Flush(10000).ok());
  auto consumer = MakeConsumer("g-mx", {"mx"}, [](const std::string&, int32_t) { return std::optional<int64_t>(); });
  ASSERT_TRUE(consumer);
  std::vector<Message> out;
  ASSERT_TRUE(WaitFor([&] {
    std::vector<Message> batch;
    EXPECT_TRUE(consumer->Poll(7, 200, &batch).ok());
    EXPECT_LE(batch.size(), 7u);
    out.insert(out.end(), batch.begin(), batch.end());
    return out.size() >= 20;
  }));
  ASSERT_EQ(out.size(), 20u);
  for (size_t i = 0; i < out.size(); ++i) EXPECT_EQ(out[i].offset, static_cast<int64_t>(i));
}

}  // namespace
}  // namespace cityloop::ingest
