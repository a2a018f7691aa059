#include "ingest/broker.h"

#include <gtest/gtest.h>

#include <chrono>
#include <optional>
#include <set>
#include <sstream>

#include "ingest/kafka.h"
#include "tests/support/test_support.h"

namespace cityloop::ingest {
namespace {

using cityloop::testing::RunCommand;

std::unique_ptr<EmbeddedBroker> StartBroker(const BrokerOptions& options) {
  auto broker = EmbeddedBroker::Start(options);
  EXPECT_TRUE(broker.ok()) << broker.status().ToString();
  return broker.ok() ? std::move(broker).value() : nullptr;
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) out.push_back(line);
  }
  return out;
}

TEST(EmbeddedBroker, StartsWithTopicsAndPartitionCounts) {
  BrokerOptions o;
  o.topics = {{"t.three", 3}, {"t.one", 1}, {"t.eight", 8}};
  auto broker = StartBroker(o);
  ASSERT_TRUE(broker);
  const std::string& addr = broker->bootstrap();
  const std::string host = "127.0.0.1:";
  ASSERT_EQ(addr.rfind(host, 0), 0u) << addr;
  const std::string port = addr.substr(host.size());
  EXPECT_FALSE(port.empty());
  EXPECT_EQ(port.find_first_not_of("0123456789"), std::string::npos) << addr;
  EXPECT_GT(std::stoi(port), 0);
  for (const auto& [topic, partitions] : o.topics) {
    auto n = PartitionCount(broker->bootstrap(), topic);
    ASSERT_TRUE(n.ok()) << topic << ": " << n.status().ToString();
    EXPECT_EQ(*n, partitions) << topic;
  }
}

TEST(EmbeddedBroker, RejectsBadOptions) {
  BrokerOptions o;
  o.brokers = 0;
  EXPECT_FALSE(EmbeddedBroker::Start(o).ok());
  o.brokers = 1;
  o.topics = {{"t", 0}};
  EXPECT_FALSE(EmbeddedBroker::Start(o).ok());
}

TEST(EmbeddedBroker, BrokerOptionsForCoversEveryConfiguredTopic) {
  KafkaOptions k;
  k.partitions = 6;
  k.topics.sensors = "my.sensors";
  BrokerOptions o = BrokerOptionsFor(k);
  std::set<std::string> names;
  for (const auto& [topic, partitions] : o.topics) {
    names.insert(topic);
    EXPECT_EQ(partitions, 6) << topic;
  }
  EXPECT_EQ(names, (std::set<std::string>{"my.sensors", "city.camera.frames", "city.camera.detections",
                                          "city.reports", "city.units", "cityloop.commands", "cityloop.cases",
                                          "cityloop.dispatch", "cityloop.dlq"}));

  auto broker = StartBroker(o);
  ASSERT_TRUE(broker);
  for (const auto& [topic, partitions] : o.topics) {
    auto n = PartitionCount(broker->bootstrap(), topic);
    ASSERT_TRUE(n.ok()) << topic << ": " << n.status().ToString();
    EXPECT_EQ(*n, 6) << topic;
  }
}

TEST(EmbeddedBroker, PartitionCountOfMissingTopicIsNotFoundAndCreatesNothing) {
  auto broker = StartBroker({});
  ASSERT_TRUE(broker);
  auto n = PartitionCount(broker->bootstrap(), "no.such.topic", 3000);
  ASSERT_FALSE(n.ok());
  EXPECT_EQ(n.status().code(), StatusCode::kNotFound) << n.status().ToString();
  n = PartitionCount(broker->bootstrap(), "no.such.topic", 3000);
  EXPECT_EQ(n.status().code(), StatusCode::kNotFound) << n.status().ToString();
}

TEST(EmbeddedBroker, TopicsAutoCreatedByProducersGetDefaultPartitions) {
  BrokerOptions o;
  ASSERT_EQ(o.default_partitions, 4);  // the mock cluster's fixed auto-create count
  auto broker = StartBroker(o);
  ASSERT_TRUE(broker);
  ProducerOptions po;
  po.bootstrap = broker->bootstrap();
  auto producer = KafkaProducer::Create(po);
  ASSERT_TRUE(producer.ok()) << producer.status().ToString();
  ASSERT_TRUE((*producer)->Produce("auto.created", "k", "v").ok());
  ASSERT_TRUE((*producer)->Flush(10000).ok());
  auto n = PartitionCount(broker->bootstrap(), "auto.created");
  ASSERT_TRUE(n.ok()) << n.status().ToString();
  EXPECT_EQ(*n, o.default_partitions);

  // A consumer's subscription alone creates the topic too.
  ConsumerOptions co;
  co.bootstrap = broker->bootstrap();
  co.group_id = "g-auto";
  co.topics = {"auto.subscribed"};
  auto consumer = KafkaConsumer::Create(co, nullptr);
  ASSERT_TRUE(consumer.ok()) << consumer.status().ToString();
  EXPECT_TRUE(cityloop::testing::WaitFor([&] {
    std::vector<Message> out;
    EXPECT_TRUE((*consumer)->Poll(10, 50, &out).ok());
    auto count = PartitionCount(broker->bootstrap(), "auto.subscribed", 1000);
    return count.ok() && *count == o.default_partitions;
  }));
}

TEST(EmbeddedBroker, KcatProducesAndConsumes) {
  BrokerOptions o;
  o.topics = {{"kcat.in", 1}, {"kcat.out", 1}};
  auto broker = StartBroker(o);
  ASSERT_TRUE(broker);
  const std::string addr = broker->bootstrap();

  // kcat -> broker -> kcat
  std::string out;
  ASSERT_EQ(RunCommand({"sh", "-c", "printf 'alpha\\nbeta\\ngamma\\n' | kcat -P -b " + addr + " -t kcat.in"}, &out),
            0)
      << out;
  ASSERT_EQ(RunCommand({"kcat", "-C", "-b", addr, "-t", "kcat.in", "-o", "beginning", "-e", "-q"}, &out), 0) << out;
  EXPECT_EQ(Lines(out), (std::vector<std::string>{"alpha", "beta", "gamma"}));

  // KafkaProducer -> broker -> kcat, with key and header
  ProducerOptions po;
  po.bootstrap = addr;
  auto producer = KafkaProducer::Create(po);
  ASSERT_TRUE(producer.ok()) << producer.status().ToString();
  ASSERT_TRUE((*producer)->Produce("kcat.out", "dev-1", "reading", {{"x-h", "hv"}}).ok());
  ASSERT_TRUE((*producer)->Flush(10000).ok());
  ASSERT_EQ(RunCommand({"kcat", "-C", "-b", addr, "-t", "kcat.out", "-o", "beginning", "-e", "-q", "-f",
                        "%k|%s|%h\\n"},
                       &out),
            0)
      << out;
  EXPECT_EQ(Lines(out), (std::vector<std::string>{"dev-1|reading|x-h=hv"}));
}

// The mock keeps ~5 MiB per partition and drops the oldest batches beyond it.
TEST(EmbeddedBroker, DropsOldestDataBeyondFiveMiBPerPartition) {
  BrokerOptions o;
  o.topics = {{"big", 1}};
  auto broker = StartBroker(o);
  ASSERT_TRUE(broker);
  ProducerOptions po;
  po.bootstrap = broker->bootstrap();
  po.linger_ms = 0;
  auto producer = KafkaProducer::Create(po);
  ASSERT_TRUE(producer.ok()) << producer.status().ToString();
  const std::string value(256 * 1024, 'x');
  const int n = 32;  // 8 MiB
  for (int i = 0; i < n; ++i) {
    ASSERT_TRUE((*producer)->Produce("big", "k", value).ok());
    ASSERT_TRUE((*producer)->Flush(10000).ok());  // one batch per message
  }
  std::string out;
  ASSERT_EQ(RunCommand({"kcat", "-C", "-b", broker->bootstrap(), "-t", "big", "-o", "beginning", "-e", "-q", "-f",
                        "%o\\n"},
                       &out),
            0)
      << out.substr(0, 500);
  auto offsets = Lines(out);
  ASSERT_FALSE(offsets.empty());
  EXPECT_GT(std::stoll(offsets.front()), 0) << "nothing was dropped";
  EXPECT_EQ(std::stoll(offsets.back()), n - 1);
  // What is left fits in 5 MiB (plus the newest batch).
  EXPECT_LE(offsets.size() * value.size(), size_t{5} * 1024 * 1024 + value.size());
}

// Fault injection: a broker taken down makes every consumer of the process
// report the cluster unreachable (KafkaBrokersReachable, what /readyz uses)
// until it is back; pushed request errors fail the next requests in order.
TEST(EmbeddedBroker, ABrokerSetDownIsUnreachableUntilSetUp) {
  BrokerOptions o;
  o.topics = {{"t.faults", 1}};
  auto broker = StartBroker(o);
  ASSERT_TRUE(broker);
  ConsumerOptions co;
  co.bootstrap = broker->bootstrap();
  co.topics = {"t.faults"};
  co.assign_all_partitions = true;
  auto consumer = KafkaConsumer::Create(co, [](const std::string&, int32_t) { return std::optional<int64_t>(0); });
  ASSERT_TRUE(consumer.ok()) << consumer.status().ToString();
  std::vector<Message> batch;
  auto poll = [&] {
    EXPECT_TRUE((*consumer)->Poll(10, 50, &batch).ok());
  };
  EXPECT_TRUE(KafkaBrokersReachable());
  ASSERT_TRUE(broker->SetBrokerDown(1, true).ok());
  EXPECT_TRUE(cityloop::testing::WaitFor([&] {
    poll();
    return !KafkaBrokersReachable();
  }, std::chrono::seconds(30))) << "still reachable with the broker down";
  ASSERT_TRUE(broker->SetBrokerDown(1, false).ok());
  EXPECT_TRUE(cityloop::testing::WaitFor([&] {
    poll();
    return KafkaBrokersReachable();
  }, std::chrono::seconds(30))) << "unreachable after the broker came back";
  EXPECT_FALSE(broker->SetBrokerDown(7, true).ok()) << "there is no broker 7";
  (*consumer)->Close();
  EXPECT_TRUE(KafkaBrokersReachable()) << "a closed consumer still counts";
}

TEST(EmbeddedBroker, PushedProduceErrorsFailDeliveriesInOrder) {
  BrokerOptions o;
  o.topics = {{"t.errors", 1}};
  auto broker = StartBroker(o);
  ASSERT_TRUE(broker);
  auto invalid = KafkaErrorCode("INVALID_RECORD");
  ASSERT_TRUE(invalid.ok());
  EXPECT_EQ(*invalid, 87);
  EXPECT_EQ(*KafkaErrorCode("2"), 2);
  EXPECT_FALSE(KafkaErrorCode("NO_SUCH_ERROR").ok());
  EXPECT_EQ(*KafkaApiKey("Produce"), 0);
  EXPECT_EQ(*KafkaApiKey("3"), 3);
  EXPECT_FALSE(KafkaApiKey("Frobnicate").ok());
  ASSERT_TRUE(broker->PushRequestErrors(*KafkaApiKey("Produce"), {*invalid}).ok());
  std::vector<Status> results;
  ProducerOptions po;
  po.bootstrap = broker->bootstrap();
  auto producer = KafkaProducer::Create(po, [&](uint64_t, const Status& st) { results.push_back(st); });
  ASSERT_TRUE(producer.ok());
  ASSERT_TRUE((*producer)->Produce("t.errors", "k", "first").ok());
  ASSERT_TRUE((*producer)->Flush(10000).ok());
  ASSERT_TRUE((*producer)->Produce("t.errors", "k", "second").ok());
  ASSERT_TRUE((*producer)->Flush(10000).ok());
  ASSERT_EQ(results.size(), 2u);
  EXPECT_FALSE(results[0].ok()) << "the pushed error did not fail the first produce";
  EXPECT_NE(results[0].message().find("INVALID_RECORD"), std::string::npos) << results[0].ToString();
  EXPECT_TRUE(results[1].ok()) << results[1].ToString();
}

}  // namespace
}  // namespace cityloop::ingest
