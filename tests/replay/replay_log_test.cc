// The replay log: framing, rotation and indexes, the two read orders, and
// damage (torn tails, flipped bytes, missing segments) reported with its
// position while the rest still reads.
#include "replay/replay_log.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <optional>

#include "replay/crc32c.h"
#include "tests/support/test_support.h"

namespace cityloop::replay {
namespace {

namespace fs = std::filesystem;

ingest::Message Msg(const std::string& topic, int32_t partition, int64_t offset, const std::string& key,
                    int64_t ts, const std::string& value) {
  ingest::Message m;
  m.topic = topic;
  m.partition = partition;
  m.offset = offset;
  m.key = key;
  m.timestamp_ms = ts;
  m.value = value;
  return m;
}

LogReadOptions TimeOrder() {
  LogReadOptions o;
  o.order = LogOrder::kTime;
  return o;
}

// What a record says, without where it sat in Kafka.
std::string Content(const LogRecord& r) {
  return r.message.topic + "|" + r.message.key + "|" + std::to_string(r.message.timestamp_ms) + "|" + r.message.value;
}

std::vector<LogRecord> ReadAll(const std::string& dir, LogReadOptions options = {},
                               std::vector<LogProblem>* problems = nullptr) {
  auto reader = LogReader::Open(dir, options);
  EXPECT_TRUE(reader.ok()) << reader.status().ToString();
  std::vector<LogRecord> out;
  if (!reader.ok()) return out;
  while (LogRecord* r = (*reader)->Next()) out.push_back(*r);
  if (problems) *problems = (*reader)->problems();
  return out;
}

// Writes msgs (then a clock record at clock_at, if any) into a log at dir.
void WriteLog(const std::string& dir, const std::vector<ingest::Message>& msgs, uint64_t segment_bytes,
              std::optional<int64_t> clock_at = std::nullopt) {
  LogWriterOptions wo;
  wo.segment_bytes = segment_bytes;
  auto w = LogWriter::Open(dir, wo);
  ASSERT_TRUE(w.ok()) << w.status().ToString();
  for (const auto& m : msgs) ASSERT_TRUE((*w)->Append(m).ok());
  if (clock_at) {
    ASSERT_TRUE((*w)->AppendClock(*clock_at).ok());
  }
  ASSERT_TRUE((*w)->Close().ok());
}

std::string SegmentPath(const std::string& dir, const std::string& topic, int partition, int number) {
  char name[32];
  std::snprintf(name, sizeof name, "%08d.seg", number);
  return dir + "/" + topic + "/" + std::to_string(partition) + "/" + name;
}

// devices d0..d(n-1) reporting every second for `seconds`, keyed by device,
// spread over `partitions` partitions by a stable hash.
std::vector<ingest::Message> City(int devices, int seconds, int partitions) {
  std::vector<ingest::Message> out;
  std::map<int, int64_t> offsets;
  for (int t = 0; t < seconds; ++t) {
    for (int d = 0; d < devices; ++d) {
      const std::string key = "d" + std::to_string(d);
      const int p = static_cast<int>(std::hash<std::string>{}(key) % static_cast<size_t>(partitions));
      out.push_back(Msg("city.sensors", p, offsets[p]++, key, 1000000 + t * 1000 + d,
                        "{\"device_id\":\"" + key + "\",\"t\":" + std::to_string(t) + "}"));
    }
  }
  return out;
}

TEST(Crc32c, MatchesTheCastagnoliCheckValue) {
  EXPECT_EQ(Crc32c("123456789"), 0xE3069283u);
  EXPECT_EQ(Crc32c(""), 0u);
  // Extending equals checking the whole.
  EXPECT_EQ(Crc32c("6789", Crc32c("12345")), Crc32c("123456789"));
}

TEST(ReplayLog, RecordsReadBackInTheOrderTheyWereWritten) {
  testing::TempDir dir;
  auto w = LogWriter::Open(dir.path());
  ASSERT_TRUE(w.ok()) << w.status().ToString();
  ingest::Message a = Msg("city.sensors", 1, 40, "wl-1", 5000, "{\"v\":1}");
  a.headers = {{"camera_id", "cam-1"}, {"empty", ""}};
  ingest::Message b = Msg("city.reports", 0, 7, "", 4000, std::string("\0binary\xff", 8));
  ASSERT_TRUE((*w)->Append(a, 5100).ok());
  ASSERT_TRUE((*w)->AppendClock(6000).ok());
  ASSERT_TRUE((*w)->Append(b).ok());
  EXPECT_EQ((*w)->NextOffset("city.sensors", 1), 41);
  EXPECT_EQ((*w)->NextOffset("city.reports", 0), 8);
  EXPECT_EQ((*w)->NextOffset("city.units", 0), std::nullopt);
  ASSERT_TRUE((*w)->Close().ok());

  std::vector<LogProblem> problems;
  const auto records = ReadAll(dir.path(), {}, &problems);
  EXPECT_TRUE(problems.empty());
  ASSERT_EQ(records.size(), 3u);
  EXPECT_EQ(records[0].seq, 1u);
  EXPECT_EQ(records[0].kind, RecordKind::kMessage);
  EXPECT_EQ(records[0].message.topic, "city.sensors");
  EXPECT_EQ(records[0].message.partition, 1);
  EXPECT_EQ(records[0].message.offset, 40);
  EXPECT_EQ(records[0].message.key, "wl-1");
  EXPECT_EQ(records[0].message.timestamp_ms, 5000);
  EXPECT_EQ(records[0].message.headers, a.headers);
  EXPECT_EQ(records[0].ingest_ms, 5100);
  EXPECT_EQ(records[1].kind, RecordKind::kClock);
  EXPECT_EQ(records[1].ingest_ms, 6000);
  EXPECT_EQ(records[2].message.value, b.value);
  EXPECT_EQ(records[2].ingest_ms, -1);

  auto reader = LogReader::Open(dir.path());
  ASSERT_TRUE(reader.ok());
  EXPECT_EQ((*reader)->info().writer, "record");
  EXPECT_TRUE((*reader)->info().has_clock);
  EXPECT_EQ((*reader)->info().records, 2u);  // inputs; the clock advance is not one
}

TEST(ReplayLog, SegmentsRotateWithAnIndexAndTimeOrderSkipsClockRecords) {
  testing::TempDir dir;
  const auto city = City(10, 30, 1);
  WriteLog(dir.path(), city, 4096, /*clock_at=*/1);
  const std::string stream = dir.path() + "/city.sensors/0";
  size_t segments = 0;
  for (const auto& e : fs::directory_iterator(stream)) segments += e.path().extension() == ".seg";
  EXPECT_GT(segments, 3u);
  EXPECT_TRUE(fs::exists(stream + "/00000000.idx"));

  auto reader = LogReader::Open(dir.path(), TimeOrder());
  ASSERT_TRUE(reader.ok());
  EXPECT_EQ((*reader)->info().records, city.size());  // from the indexes
  const auto records = ReadAll(dir.path(), TimeOrder());
  ASSERT_EQ(records.size(), city.size());
  for (size_t i = 0; i < city.size(); ++i) EXPECT_EQ(records[i].message.value, city[i].value) << i;
}

// The same records over 1 or 3 partitions, read however the writer happened
// to interleave the partitions: time order is the same sequence.
TEST(ReplayLog, TimeOrderDoesNotDependOnPartitionsOrInterleaving) {
  auto read_back = [](const std::vector<ingest::Message>& written) {
    testing::TempDir dir;
    WriteLog(dir.path(), written, 64 << 20);
    std::vector<std::string> out;
    for (const auto& r : ReadAll(dir.path(), TimeOrder())) out.push_back(Content(r));
    return out;
  };
  const auto one = City(7, 20, 1);
  auto three = City(7, 20, 3);
  // A backlog read one partition at a time: partition 2 entirely first.
  std::stable_sort(three.begin(), three.end(),
                   [](const ingest::Message& a, const ingest::Message& b) { return (a.partition == 2) > (b.partition == 2); });
  // Two records of one millisecond, with and without keys.
  auto tie = [](std::vector<ingest::Message> v, int partitions) {
    v.push_back(Msg("city.reports", 0, 0, "", 1000500, "{\"r\":\"b\"}"));
    v.push_back(Msg("city.reports", partitions - 1, 1, "", 1000500, "{\"r\":\"a\"}"));
    return v;
  };
  const auto a = read_back(tie(one, 1));
  const auto b = read_back(tie(three, 3));
  ASSERT_EQ(a.size(), 7u * 20 + 2);
  EXPECT_EQ(a, b);
  // And the order is by time.
  EXPECT_EQ(a.front(), "city.sensors|d0|1000000|{\"device_id\":\"d0\",\"t\":0}");
}

TEST(ReplayLog, TimeOrderPutsSmallDisorderWithinAPartitionRight) {
  testing::TempDir dir;
  auto w = LogWriter::Open(dir.path());
  ASSERT_TRUE(w.ok());
  // 300 ms back within the partition: inside the 1 s window. 6.5 s back,
  // after 9000 has gone out: not.
  for (auto [offset, ts] : std::vector<std::pair<int64_t, int64_t>>{
           {0, 1000}, {1, 1500}, {2, 1200}, {3, 9000}, {4, 10500}, {5, 4000}}) {
    ASSERT_TRUE((*w)->Append(Msg("t", 0, offset, "k", ts, std::to_string(ts))).ok());
  }
  ASSERT_TRUE((*w)->Close().ok());
  auto reader = LogReader::Open(dir.path(), TimeOrder());
  ASSERT_TRUE(reader.ok());
  std::vector<int64_t> order;
  while (LogRecord* r = (*reader)->Next()) order.push_back(r->message.timestamp_ms);
  EXPECT_EQ(order, (std::vector<int64_t>{1000, 1200, 1500, 9000, 4000, 10500}));
  EXPECT_EQ((*reader)->out_of_order(), 1u);
}

TEST(ReplayLog, TimeRangeSkipsWhatIsOutside) {
  testing::TempDir dir;
  WriteLog(dir.path(), City(3, 100, 2), 2048);
  LogReadOptions ro;
  ro.order = LogOrder::kTime;
  ro.from_ms = 1000000 + 40 * 1000;
  ro.to_ms = 1000000 + 60 * 1000;
  const auto records = ReadAll(dir.path(), ro);
  ASSERT_EQ(records.size(), 3u * 20);
  EXPECT_EQ(records.front().message.timestamp_ms, ro.from_ms);
  EXPECT_LT(records.back().message.timestamp_ms, ro.to_ms);
}

class DamagedLog : public ::testing::Test {
 protected:
  void SetUp() override {
    WriteLog(dir.path(), City(4, 60, 1), 2048);
    total = ReadAll(dir.path()).size();
    ASSERT_EQ(total, 240u);
  }
  std::string segment(int n) const { return SegmentPath(dir.path(), "city.sensors", 0, n); }
  void Flip(const std::string& path, size_t at) {
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(static_cast<std::streamoff>(at));
    char c = 0;
    f.read(&c, 1);
    f.seekp(static_cast<std::streamoff>(at));
    c = static_cast<char>(c ^ 0x10);
    f.write(&c, 1);
  }
  testing::TempDir dir;
  size_t total = 0;
};

TEST_F(DamagedLog, AFlippedByteLosesOneRecordAndIsReportedWithItsPosition) {
  const size_t size = fs::file_size(segment(1));
  Flip(segment(1), size / 2);
  std::vector<LogProblem> problems;
  const auto records = ReadAll(dir.path(), {}, &problems);
  EXPECT_EQ(records.size(), total - 1);
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_EQ(problems[0].file, segment(1));
  EXPECT_GT(problems[0].position, 0);
  EXPECT_LE(problems[0].position, static_cast<int64_t>(size / 2));
  EXPECT_NE(problems[0].ToString().find("checksum mismatch"), std::string::npos) << problems[0].ToString();
}

TEST_F(DamagedLog, ATornTailIsReportedAndTheNextSegmentsStillRead) {
  const size_t size = fs::file_size(segment(2));
  fs::resize_file(segment(2), size - 10);
  std::vector<LogProblem> problems;
  const auto records = ReadAll(dir.path(), {}, &problems);
  EXPECT_EQ(records.size(), total - 1);
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_EQ(problems[0].file, segment(2));
  EXPECT_NE(problems[0].what.find("torn tail"), std::string::npos) << problems[0].ToString();
  // Records of later segments come after it.
  EXPECT_EQ(records.back().message.timestamp_ms, 1000000 + 59 * 1000 + 3);
}

TEST_F(DamagedLog, AMissingSegmentIsNamedAndTheRestReads) {
  const auto before = ReadAll(dir.path());
  fs::remove(segment(1));
  std::vector<LogProblem> problems;
  const auto records = ReadAll(dir.path(), {}, &problems);
  EXPECT_LT(records.size(), before.size());
  EXPECT_GT(records.size(), 0u);
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_NE(problems[0].what.find("00000001.seg"), std::string::npos) << problems[0].ToString();
  EXPECT_NE(problems[0].what.find("missing"), std::string::npos);
  // Every record read is one of the intact log's, in the same order.
  size_t j = 0;
  for (const auto& r : records) {
    while (j < before.size() && before[j].seq != r.seq) ++j;
    ASSERT_LT(j, before.size()) << "record " << r.seq << " out of order or unknown";
  }
}

TEST_F(DamagedLog, AWriterContinuesAfterCuttingItsTornTail) {
  // A crash mid-append: half a record at the end of the newest segment, no index.
  int last = 0;
  while (fs::exists(segment(last + 1))) ++last;
  std::string index = segment(last);
  index.replace(index.size() - 3, 3, "idx");
  ASSERT_TRUE(fs::remove(index));
  {
    std::ofstream f(segment(last), std::ios::app | std::ios::binary);
    f.write("CLRC\x40\x00\x00\x00garbage", 15);
  }
  LogWriterOptions wo;
  wo.segment_bytes = 2048;
  auto w = LogWriter::Open(dir.path(), wo);
  ASSERT_TRUE(w.ok()) << w.status().ToString();
  ASSERT_EQ((*w)->repairs().size(), 1u);
  EXPECT_NE((*w)->repairs()[0].what.find("torn tail"), std::string::npos);
  EXPECT_EQ((*w)->NextOffset("city.sensors", 0), 240);
  ASSERT_TRUE((*w)->Append(Msg("city.sensors", 0, 240, "d9", 2000000, "after")).ok());
  ASSERT_TRUE((*w)->Close().ok());
  std::vector<LogProblem> problems;
  const auto records = ReadAll(dir.path(), {}, &problems);
  EXPECT_TRUE(problems.empty()) << problems[0].ToString();
  ASSERT_EQ(records.size(), total + 1);
  EXPECT_EQ(records.back().message.value, "after");
  EXPECT_EQ(records.back().seq, records[records.size() - 2].seq + 1);
}

TEST(ReplayLog, DirectoriesThatAreNoPartitionNumberAreLeftAlone) {
  testing::TempDir dir;
  WriteLog(dir.path(), {Msg("city.sensors", 0, 0, "wl-1", 5000, "{}")}, 1 << 20);
  // Beside the stream: a name beyond int32 (it threw std::out_of_range), a sign, text.
  for (const char* name : {"99999999999", "-1", "tmp"}) {
    std::filesystem::create_directories(dir.path() + "/city.sensors/" + name);
  }
  std::vector<LogProblem> problems;
  const auto records = ReadAll(dir.path(), {}, &problems);
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records[0].message.partition, 0);
}

TEST(ReplayLog, RefusesToMixWritersAndReadsOnlyLogs) {
  testing::TempDir dir;
  ASSERT_TRUE(LogWriter::Open(dir.path()).ok());
  LogWriterOptions engine;
  engine.writer = "engine";
  auto w = LogWriter::Open(dir.path(), engine);
  ASSERT_FALSE(w.ok());
  EXPECT_NE(w.status().message().find("written by 'record'"), std::string::npos);
  testing::TempDir empty;
  auto r = LogReader::Open(empty.path());
  ASSERT_FALSE(r.ok());
}

}  // namespace
}  // namespace cityloop::replay
