#include "replay/kafka_recorder.h"

#include <spdlog/spdlog.h>

#include <charconv>
#include <set>

#include "ingest/kafka.h"
#include "ingest/offset_query.h"

namespace cityloop::replay {
namespace {

// Where each partition of each topic starts and (optionally) ends.
struct Plan {
  std::map<storage::TopicPartition, int64_t> start;
  std::map<storage::TopicPartition, int64_t> end;    // absent: follow
};

Result<Plan> MakePlan(const KafkaRange& range, const LogWriter& writer, RecordStats* stats) {
  auto query = ingest::OffsetQuery::Create(range.bootstrap, range.properties);
  if (!query.ok()) return query.status();
  Plan plan;
  for (const std::string& topic : range.topics) {
    auto high = (*query)->HighWatermarks(topic);
    if (!high.ok()) return Status(high.status().code(), topic + ": " + high.status().message());
    auto low = (*query)->LowWatermarks(topic);
    if (!low.ok()) return Status(low.status().code(), topic + ": " + low.status().message());
    std::map<int32_t, int64_t> from_time, to_time;
    if (range.from_ms) {
      auto t = (*query)->OffsetsForTime(topic, *range.from_ms);
      if (!t.ok()) return Status(t.status().code(), topic + ": " + t.status().message());
      from_time = t->offsets;
      stats->scanned_for_time |= t->scanned;
    }
    if (range.to_ms) {
      auto t = (*query)->OffsetsForTime(topic, *range.to_ms);
      if (!t.ok()) return Status(t.status().code(), topic + ": " + t.status().message());
      to_time = t->offsets;
      stats->scanned_for_time |= t->scanned;
    }
    for (const auto& [partition, high_offset] : *high) {
      const storage::TopicPartition tp{topic, partition};
      if (auto resume = writer.NextOffset(topic, partition)) {
        plan.start[tp] = *resume;  // continuing this log
      } else if (auto it = range.from_offsets.find(tp); it != range.from_offsets.end()) {
        plan.start[tp] = it->second;
      } else if (from_time.count(partition)) {
        plan.start[tp] = from_time[partition];
      } else {
        plan.start[tp] = low->count(partition) ? low->at(partition) : 0;  // the earliest still held
      }
      if (to_time.count(partition)) plan.end[tp] = to_time[partition];
      else if (range.until_caught_up) plan.end[tp] = high_offset;
    }
  }
  return plan;
}

}  // namespace

Result<std::map<storage::TopicPartition, int64_t>> ParseOffsetSpec(const std::string& spec) {
  std::map<storage::TopicPartition, int64_t> out;
  size_t pos = 0;
  while (pos < spec.size()) {
    size_t comma = spec.find(',', pos);
    if (comma == std::string::npos) comma = spec.size();
    const std::string item = spec.substr(pos, comma - pos);
    pos = comma + 1;
    const size_t colon = item.rfind(':');
    const size_t eq = item.find('=', colon == std::string::npos ? 0 : colon);
    int32_t partition = 0;
    int64_t offset = 0;
    if (colon == std::string::npos || eq == std::string::npos || colon == 0 ||
        std::from_chars(item.data() + colon + 1, item.data() + eq, partition).ec != std::errc() ||
        std::from_chars(item.data() + eq + 1, item.data() + item.size(), offset).ec != std::errc() || offset < 0) {
      return Status::InvalidArgument("bad offset '" + item + "': expected TOPIC:PARTITION=OFFSET[,...]");
    }
    out[{item.substr(0, colon), partition}] = offset;
  }
  return out;
}

Result<RecordStats> RecordFromKafka(const KafkaRange& range, LogWriter* writer, const std::atomic<bool>* stop) {
  RecordStats stats;
  auto plan = MakePlan(range, *writer, &stats);
  if (!plan.ok()) return plan.status();
  const bool bounded = !plan->end.empty();
  // Partitions still to read up to their end.
  std::set<storage::TopicPartition> pending;
  for (const auto& [tp, end] : plan->end) {
    if (plan->start.at(tp) < end) pending.insert(tp);
  }
  if (bounded && pending.empty()) return stats;

  ingest::ConsumerOptions co;
  co.bootstrap = range.bootstrap;
  co.group_id = "cityloop-recorder";
  co.client_id = "cityloop-recorder";
  co.topics = range.topics;
  co.properties = range.properties;
  co.assign_all_partitions = true;
  const Plan& p = *plan;
  auto consumer = ingest::KafkaConsumer::Create(co, [&p](const std::string& topic, int32_t partition) {
    auto it = p.start.find({topic, partition});
    return it == p.start.end() ? std::nullopt : std::optional<int64_t>(it->second);
  });
  if (!consumer.ok()) return consumer.status();

  // Offsets below a partition's end that are never delivered (transaction
  // markers, compacted-away records) would keep a bounded recording waiting:
  // after this long with nothing new it ends, naming what it did not reach.
  constexpr int kIdlePollsBeforeGivingUp = 50;  // x 200 ms
  int idle_polls = 0;
  std::vector<ingest::Message> batch;
  while (!(stop && stop->load())) {
    batch.clear();
    CL_RETURN_IF_ERROR((*consumer)->Poll(10000, 200, &batch));
    idle_polls = batch.empty() ? idle_polls + 1 : 0;
    for (const ingest::Message& m : batch) {
      const storage::TopicPartition tp{m.topic, m.partition};
      auto end = p.end.find(tp);
      if (end != p.end.end() && m.offset + 1 >= end->second) pending.erase(tp);
      if (end != p.end.end() && m.offset >= end->second) continue;
      CL_RETURN_IF_ERROR(writer->Append(m));
      ++stats.records;
      auto [recorded, first] = stats.partitions.try_emplace(tp, RecordedRange{m.offset, m.offset + 1});
      if (!first) recorded->second.to = m.offset + 1;
    }
    CL_RETURN_IF_ERROR(writer->Flush());
    if (bounded && pending.empty()) break;
    if (bounded && idle_polls >= kIdlePollsBeforeGivingUp) {
      for (const auto& tp : pending) {
        spdlog::warn("recording {}/{}: nothing more arrived before offset {}; ending there", tp.topic, tp.partition,
                     p.end.at(tp));
      }
      break;
    }
  }
  (*consumer)->Close();
  return stats;
}

}  // namespace cityloop::replay
