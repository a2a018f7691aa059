#include "storage/store.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "tests/support/test_support.h"

extern char** environ;

namespace cityloop::storage {
namespace {

using cityloop::testing::TempDir;

std::unique_ptr<Store> OpenOrDie(const std::string& path, const StoreOptions& options = {}) {
  auto store = Store::Open(path, options);
  EXPECT_TRUE(store.ok()) << store.status().ToString();
  if (!store.ok()) return nullptr;
  return std::move(store).value();
}

OutboxRecord MakeRecord(uint64_t seq) {
  OutboxRecord r;
  r.seq = seq;
  r.topic = "cityloop.cases";
  r.key = "CL-" + std::to_string(seq);
  r.value = std::string("{\"id\":") + std::to_string(seq) + "}";
  r.headers = {{"ce_type", "city.case.opened"}, {"empty", ""}};
  return r;
}

TEST(StoreTest, NewStoreHasSchemaVersion) {
  TempDir dir;
  auto store = OpenOrDie(dir.file("db"));
  ASSERT_TRUE(store);
  EXPECT_EQ(store->schema_version(), kSchemaVersion);
  EXPECT_EQ(store->path(), dir.file("db"));
  auto v = store->GetMeta("schema_version");
  ASSERT_TRUE(v.ok());
  ASSERT_TRUE(v->has_value());
  EXPECT_EQ(**v, std::to_string(kSchemaVersion));
}

TEST(StoreTest, MissingStoreWithoutCreateIsNotFound) {
  TempDir dir;
  StoreOptions options;
  options.create_if_missing = false;
  auto store = Store::Open(dir.file("nope"), options);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), StatusCode::kNotFound) << store.status().ToString();
}

TEST(StoreTest, CaseRoundTripAndOrder) {
  TempDir dir;
  auto store = OpenOrDie(dir.file("db"));
  ASSERT_TRUE(store);
  auto b = store->NewBatch();
  b.PutCase("CL-2", R"({"id":"CL-2"})");
  b.PutCase("CL-1", R"({"id":"CL-1"})");
  b.PutCase("CL-3", R"({"id":"CL-3"})");
  EXPECT_EQ(b.count(), 3u);
  ASSERT_TRUE(store->Write(std::move(b)).ok());

  auto got = store->GetCase("CL-1");
  ASSERT_TRUE(got.ok());
  ASSERT_TRUE(got->has_value());
  EXPECT_EQ(**got, R"({"id":"CL-1"})");
  auto missing = store->GetCase("CL-9");
  ASSERT_TRUE(missing.ok());
  EXPECT_FALSE(missing->has_value());

  std::vector<std::string> ids;
  ASSERT_TRUE(store->ForEachCase([&](std::string_view id, std::string_view) {
                     ids.emplace_back(id);
                     return true;
                   }).ok());
  EXPECT_EQ(ids, (std::vector<std::string>{"CL-1", "CL-2", "CL-3"}));

  ids.clear();
  ASSERT_TRUE(store->ForEachCase([&](std::string_view id, std::string_view) {
                     ids.emplace_back(id);
                     return ids.size() < 2;
                   }).ok());
  EXPECT_EQ(ids, (std::vector<std::string>{"CL-1", "CL-2"}));
}

TEST(StoreTest, CasesAfterAnIdForPaging) {
  TempDir dir;
  auto store = OpenOrDie(dir.file("db"));
  ASSERT_TRUE(store);
  auto b = store->NewBatch();
  for (const char* id : {"CL-1", "CL-10", "CL-2", "CL-3"}) b.PutCase(id, "{}");
  ASSERT_TRUE(store->Write(std::move(b)).ok());
  auto after = [&](std::string_view from) {
    std::vector<std::string> ids;
    EXPECT_TRUE(store->ForEachCaseAfter(from, [&](std::string_view id, std::string_view) {
                       ids.emplace_back(id);
                       return true;
                     }).ok());
    return ids;
  };
  EXPECT_EQ(after(""), (std::vector<std::string>{"CL-1", "CL-10", "CL-2", "CL-3"}));
  EXPECT_EQ(after("CL-1"), (std::vector<std::string>{"CL-10", "CL-2", "CL-3"}));
  EXPECT_EQ(after("CL-25"), (std::vector<std::string>{"CL-3"}));  // an id that is not there
  EXPECT_TRUE(after("CL-3").empty());
}

// The event log behind the live stream: in seq order from any point, trimmed by range.
TEST(StoreTest, EventLogFromAnySeqAndTrimmed) {
  TempDir dir;
  auto store = OpenOrDie(dir.file("db"));
  ASSERT_TRUE(store);
  EXPECT_EQ(store->FirstEventSeq(), 0u);
  auto b = store->NewBatch();
  for (uint64_t seq : {3, 5, 256, 257}) b.PutEvent(seq, seq % 2 ? "cityloop.cases" : "cityloop.dispatch", "{\"n\":" + std::to_string(seq) + "}");
  ASSERT_TRUE(store->Write(std::move(b)).ok());
  auto after = [&](uint64_t from) {
    std::vector<std::string> got;
    EXPECT_TRUE(store->ForEachEventAfter(from, [&](uint64_t seq, std::string_view topic, std::string_view json) {
                       got.push_back(std::to_string(seq) + " " + std::string(topic) + " " + std::string(json));
                       return true;
                     }).ok());
    return got;
  };
  EXPECT_EQ(after(0), (std::vector<std::string>{"3 cityloop.cases {\"n\":3}", "5 cityloop.cases {\"n\":5}",
                                                "256 cityloop.dispatch {\"n\":256}", "257 cityloop.cases {\"n\":257}"}));
  EXPECT_EQ(after(5).size(), 2u);
  EXPECT_EQ(after(255).front().substr(0, 4), "256 ");
  EXPECT_EQ(store->FirstEventSeq(), 3u);
  auto trim = store->NewBatch();
  trim.DeleteEventsBefore(256);
  ASSERT_TRUE(store->Write(std::move(trim)).ok());
  EXPECT_EQ(store->FirstEventSeq(), 256u);
  EXPECT_EQ(after(0).size(), 2u);
}

TEST(StoreTest, AuditPerCaseInSeqOrder) {
  TempDir dir;
  auto store = OpenOrDie(dir.file("db"));
  ASSERT_TRUE(store);
  auto b = store->NewBatch();
  // 256 and 1 would sort wrongly as text; big-endian keys keep numeric order.
  b.PutAudit("CL-1", 256, "a256");
  b.PutAudit("CL-1", 1, "a1");
  b.PutAudit("CL-1", 2, "a2");
  b.PutAudit("CL-10", 1, "other");  // a case whose id extends CL-1
  b.PutAudit("CL-", 7, "shorter");
  ASSERT_TRUE(store->Write(std::move(b)).ok());

  std::vector<std::pair<uint32_t, std::string>> got;
  ASSERT_TRUE(store->ForEachAudit("CL-1", [&](uint32_t seq, std::string_view json) {
                     got.emplace_back(seq, std::string(json));
                     return true;
                   }).ok());
  EXPECT_EQ(got, (std::vector<std::pair<uint32_t, std::string>>{{1, "a1"}, {2, "a2"}, {256, "a256"}}));

  got.clear();
  ASSERT_TRUE(store->ForEachAudit("CL-1", [&](uint32_t seq, std::string_view json) {
                     got.emplace_back(seq, std::string(json));
                     return false;
                   }).ok());
  EXPECT_EQ(got.size(), 1u);

  int none = 0;
  ASSERT_TRUE(store->ForEachAudit("CL-404", [&](uint32_t, std::string_view) { return ++none, true; }).ok());
  EXPECT_EQ(none, 0);
}

TEST(StoreTest, OutboxEncodingRoundTrip) {
  OutboxRecord r = MakeRecord(42);
  r.value = std::string("binary\0payload", 14);
  const std::string bytes = EncodeOutboxRecord(r);
  auto back = DecodeOutboxRecord(42, bytes);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->seq, 42u);
  EXPECT_EQ(back->topic, r.topic);
  EXPECT_EQ(back->key, r.key);
  EXPECT_EQ(back->value, r.value);
  EXPECT_EQ(back->headers, r.headers);

  OutboxRecord empty;
  auto e = DecodeOutboxRecord(7, EncodeOutboxRecord(empty));
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(e->seq, 7u);
  EXPECT_TRUE(e->topic.empty() && e->key.empty() && e->value.empty() && e->headers.empty());
}

TEST(StoreTest, CorruptOutboxRecordIsDataLoss) {
  const std::string good = EncodeOutboxRecord(MakeRecord(1));
  // Every truncation is detected.
  for (size_t n = 0; n < good.size(); ++n) {
    auto r = DecodeOutboxRecord(1, std::string_view(good).substr(0, n));
    ASSERT_FALSE(r.ok()) << "truncated to " << n;
    EXPECT_EQ(r.status().code(), StatusCode::kDataLoss);
  }
  auto trailing = DecodeOutboxRecord(1, good + "x");
  EXPECT_EQ(trailing.status().code(), StatusCode::kDataLoss);

  std::string bad_version = good;
  bad_version[0] = 99;
  EXPECT_EQ(DecodeOutboxRecord(1, bad_version).status().code(), StatusCode::kDataLoss);

  std::string huge_len = good;
  huge_len[1] = '\x7f';  // topic length ~2 GB
  EXPECT_EQ(DecodeOutboxRecord(1, huge_len).status().code(), StatusCode::kDataLoss);

  // A header count far beyond what the bytes can hold.
  OutboxRecord no_headers = MakeRecord(1);
  no_headers.headers.clear();
  std::string many = EncodeOutboxRecord(no_headers);
  many.replace(many.size() - 4, 4, "\xff\xff\xff\xff");
  EXPECT_EQ(DecodeOutboxRecord(1, many).status().code(), StatusCode::kDataLoss);
}

TEST(StoreTest, OutboxOrderAndDelete) {
  TempDir dir;
  auto store = OpenOrDie(dir.file("db"));
  ASSERT_TRUE(store);
  auto b = store->NewBatch();
  for (uint64_t seq : std::vector<uint64_t>{300, 1, 256, 2, 0x1'0000'0000ull}) b.PutOutbox(MakeRecord(seq));
  ASSERT_TRUE(store->Write(std::move(b)).ok());

  auto seqs = [&] {
    std::vector<uint64_t> out;
    Status s = store->ForEachOutbox([&](const OutboxRecord& r) {
      EXPECT_EQ(r.key, "CL-" + std::to_string(r.seq));
      EXPECT_EQ(r.headers, MakeRecord(r.seq).headers);
      out.push_back(r.seq);
      return true;
    });
    EXPECT_TRUE(s.ok()) << s.ToString();
    return out;
  };
  EXPECT_EQ(seqs(), (std::vector<uint64_t>{1, 2, 256, 300, 0x1'0000'0000ull}));

  ASSERT_TRUE(store->DeleteOutbox({1, 256, 999}).ok());  // 999 was never there
  EXPECT_EQ(seqs(), (std::vector<uint64_t>{2, 300, 0x1'0000'0000ull}));
  ASSERT_TRUE(store->DeleteOutbox({}).ok());

  std::vector<uint64_t> first;
  ASSERT_TRUE(store->ForEachOutbox([&](const OutboxRecord& r) {
                     first.push_back(r.seq);
                     return false;
                   }).ok());
  EXPECT_EQ(first, (std::vector<uint64_t>{2}));
}

TEST(StoreTest, OffsetsMap) {
  TempDir dir;
  auto store = OpenOrDie(dir.file("db"));
  ASSERT_TRUE(store);
  EXPECT_FALSE(store->GetOffset({"city.sensors", 0}).has_value());
  EXPECT_TRUE(store->AllOffsets().empty());

  auto b = store->NewBatch();
  b.PutOffset({"city.sensors", 0}, 10);
  b.PutOffset({"city.sensors", 1}, 0);
  b.PutOffset({"city.sensors", 256}, 1234567890123LL);
  b.PutOffset({"city.reports", 3}, 7);
  b.PutOffset({"city.sensors", 0}, 11);  // later op in the batch wins
  ASSERT_TRUE(store->Write(std::move(b)).ok());

  EXPECT_EQ(store->GetOffset({"city.sensors", 0}), std::optional<int64_t>(11));
  EXPECT_EQ(store->GetOffset({"city.sensors", 256}), std::optional<int64_t>(1234567890123LL));
  EXPECT_FALSE(store->GetOffset({"city.sensors", 2}).has_value());
  EXPECT_FALSE(store->GetOffset({"city.sensor", 0}).has_value());

  std::map<TopicPartition, int64_t> want = {{{"city.reports", 3}, 7},
                                            {{"city.sensors", 0}, 11},
                                            {{"city.sensors", 1}, 0},
                                            {{"city.sensors", 256}, 1234567890123LL}};
  EXPECT_EQ(store->AllOffsets(), want);
}

TEST(StoreTest, StatePrefixIteration) {
  TempDir dir;
  auto store = OpenOrDie(dir.file("db"));
  ASSERT_TRUE(store);
  auto b = store->NewBatch();
  b.PutState("dev/wl-2", "b");
  b.PutState("dev/wl-1", "a");
  b.PutState("dev/wl-3", "c");
  b.PutState("dev0", "not under dev/");
  b.PutState("de", "shorter");
  b.PutState("win/1", "w");
  b.PutState(std::string("\xff\xff", 2), "all-ff");
  ASSERT_TRUE(store->Write(std::move(b)).ok());

  auto keys = [&](std::string_view prefix, size_t limit = SIZE_MAX) {
    std::vector<std::string> out;
    Status s = store->ForEachState(prefix, [&](std::string_view k, std::string_view) {
      out.emplace_back(k);
      return out.size() < limit;
    });
    EXPECT_TRUE(s.ok()) << s.ToString();
    return out;
  };
  EXPECT_EQ(keys("dev/"), (std::vector<std::string>{"dev/wl-1", "dev/wl-2", "dev/wl-3"}));
  EXPECT_EQ(keys("dev/", 2), (std::vector<std::string>{"dev/wl-1", "dev/wl-2"}));
  EXPECT_EQ(keys("dev"), (std::vector<std::string>{"dev/wl-1", "dev/wl-2", "dev/wl-3", "dev0"}));
  EXPECT_EQ(keys("zzz"), std::vector<std::string>{});
  EXPECT_EQ(keys(std::string("\xff", 1)), (std::vector<std::string>{std::string("\xff\xff", 2)}));
  EXPECT_EQ(keys("").size(), 7u);

  auto del = store->NewBatch();
  del.DeleteState("dev/wl-2");
  ASSERT_TRUE(store->Write(std::move(del)).ok());
  EXPECT_EQ(keys("dev/"), (std::vector<std::string>{"dev/wl-1", "dev/wl-3"}));
  auto gone = store->GetState("dev/wl-2");
  ASSERT_TRUE(gone.ok());
  EXPECT_FALSE(gone->has_value());
  auto kept = store->GetState("win/1");
  ASSERT_TRUE(kept.ok());
  EXPECT_EQ(kept->value_or(""), "w");
}

TEST(StoreTest, BatchIsAtomicAndSurvivesReopen) {
  TempDir dir;
  {
    auto store = OpenOrDie(dir.file("db"));
    ASSERT_TRUE(store);
    auto b = store->NewBatch();
    b.PutCase("CL-1", "case");
    b.PutAudit("CL-1", 1, "opened");
    b.PutOutbox(MakeRecord(1));
    b.PutOffset({"city.sensors", 0}, 5);
    b.PutState("dev/1", "s");
    b.PutMeta("counter", "1");
    EXPECT_EQ(b.count(), 6u);

    // Nothing is visible before Write.
    EXPECT_FALSE(store->GetCase("CL-1")->has_value());
    EXPECT_FALSE(store->GetOffset({"city.sensors", 0}).has_value());

    ASSERT_TRUE(store->Write(std::move(b)).ok());
    EXPECT_TRUE(store->GetCase("CL-1")->has_value());
    EXPECT_EQ(store->GetOffset({"city.sensors", 0}), std::optional<int64_t>(5));
  }
  auto store = OpenOrDie(dir.file("db"));
  ASSERT_TRUE(store);
  EXPECT_EQ(store->GetCase("CL-1")->value_or(""), "case");
  int audits = 0;
  ASSERT_TRUE(store->ForEachAudit("CL-1", [&](uint32_t, std::string_view j) {
                     EXPECT_EQ(j, "opened");
                     return ++audits, true;
                   }).ok());
  EXPECT_EQ(audits, 1);
  int outbox = 0;
  ASSERT_TRUE(store->ForEachOutbox([&](const OutboxRecord&) { return ++outbox, true; }).ok());
  EXPECT_EQ(outbox, 1);
  EXPECT_EQ(store->GetOffset({"city.sensors", 0}), std::optional<int64_t>(5));
  EXPECT_EQ(store->GetState("dev/1")->value_or(""), "s");
  EXPECT_EQ(store->GetMeta("counter")->value_or(""), "1");
  EXPECT_EQ(store->schema_version(), kSchemaVersion);
}

TEST(StoreTest, EmptyBatchIsNoOpAndForeignBatchIsRefused) {
  TempDir dir;
  auto a = OpenOrDie(dir.file("a"));
  auto b = OpenOrDie(dir.file("b"));
  ASSERT_TRUE(a && b);
  auto empty = a->NewBatch();
  EXPECT_EQ(empty.count(), 0u);
  EXPECT_TRUE(a->Write(std::move(empty)).ok());

  auto foreign = b->NewBatch();
  foreign.PutCase("CL-1", "x");
  Status s = a->Write(std::move(foreign));
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_FALSE(a->GetCase("CL-1")->has_value());
  EXPECT_FALSE(b->GetCase("CL-1")->has_value());
}

TEST(StoreTest, SyncWritesWork) {
  TempDir dir;
  StoreOptions options;
  options.sync = true;
  auto store = OpenOrDie(dir.file("db"), options);
  ASSERT_TRUE(store);
  auto b = store->NewBatch();
  b.PutCase("CL-1", "x");
  ASSERT_TRUE(store->Write(std::move(b)).ok());
  ASSERT_TRUE(store->DeleteOutbox({1}).ok());
  EXPECT_EQ(store->GetCase("CL-1")->value_or(""), "x");
}

TEST(StoreTest, NewerSchemaVersionIsRefused) {
  TempDir dir;
  {
    auto store = OpenOrDie(dir.file("db"));
    ASSERT_TRUE(store);
    auto b = store->NewBatch();
    b.PutMeta("schema_version", std::to_string(kSchemaVersion + 1));
    ASSERT_TRUE(store->Write(std::move(b)).ok());
  }
  auto again = Store::Open(dir.file("db"));
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.status().code(), StatusCode::kFailedPrecondition);
  const std::string& msg = again.status().message();
  EXPECT_NE(msg.find(std::to_string(kSchemaVersion + 1)), std::string::npos) << msg;
  EXPECT_NE(msg.find(std::to_string(kSchemaVersion)), std::string::npos) << msg;
}

TEST(StoreTest, UnreadableSchemaVersionIsDataLoss) {
  TempDir dir;
  {
    auto store = OpenOrDie(dir.file("db"));
    ASSERT_TRUE(store);
    auto b = store->NewBatch();
    b.PutCase("CL-1", "x");
    b.PutMeta("schema_version", "");  // unreadable
    ASSERT_TRUE(store->Write(std::move(b)).ok());
  }
  auto again = Store::Open(dir.file("db"));
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.status().code(), StatusCode::kDataLoss) << again.status().ToString();
}

TEST(StoreTest, DataWithMissingSchemaVersionIsDataLoss) {
  TempDir dir;
  {
    auto store = OpenOrDie(dir.file("db"));
    ASSERT_TRUE(store);
    auto b = store->NewBatch();
    b.PutState("dev/1", "x");
    b.DeleteMeta("schema_version");
    ASSERT_TRUE(store->Write(std::move(b)).ok());
    EXPECT_FALSE(store->GetMeta("schema_version")->has_value());
  }
  auto again = Store::Open(dir.file("db"));
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.status().code(), StatusCode::kDataLoss) << again.status().ToString();
  EXPECT_NE(again.status().message().find("schema_version"), std::string::npos);
}

TEST(StoreTest, EmptyStoreWithoutSchemaVersionIsInitialised) {
  TempDir dir;
  {
    auto store = OpenOrDie(dir.file("db"));
    ASSERT_TRUE(store);
    auto b = store->NewBatch();
    b.DeleteMeta("schema_version");
    ASSERT_TRUE(store->Write(std::move(b)).ok());
  }
  auto store = OpenOrDie(dir.file("db"));
  ASSERT_TRUE(store);
  EXPECT_EQ(store->GetMeta("schema_version")->value_or(""), std::to_string(kSchemaVersion));
}

TEST(StoreTest, SecondOpenOfSamePathFailsCleanly) {
  TempDir dir;
  auto first = OpenOrDie(dir.file("db"));
  ASSERT_TRUE(first);
  auto second = Store::Open(dir.file("db"));
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(second.status().message().find("already open"), std::string::npos) << second.status().ToString();

  // The first store is unaffected, and once closed the path opens again.
  auto b = first->NewBatch();
  b.PutCase("CL-1", "x");
  ASSERT_TRUE(first->Write(std::move(b)).ok());
  first.reset();
  auto third = OpenOrDie(dir.file("db"));
  ASSERT_TRUE(third);
  EXPECT_EQ(third->GetCase("CL-1")->value_or(""), "x");
}

// ---- crash durability -------------------------------------------------------
// The parent re-executes this test binary as a writer child (fork + exec, so
// the child starts with a clean RocksDB environment), reads the batch numbers
// it reports through a pipe, SIGKILLs it mid-stream and checks the store.

constexpr char kChildDirEnv[] = "CITYLOOP_STORE_CRASH_CHILD_DIR";
constexpr char kChildFdEnv[] = "CITYLOOP_STORE_CRASH_CHILD_FD";
constexpr int kChildBatches = 1'000'000;  // more than it gets to write before the kill
constexpr int kReportedBeforeKill = 300;

std::string CrashCaseId(int i) { return "CL-" + std::to_string(i); }
TopicPartition CrashPartition(int i) { return {"city.sensors", i}; }

void WriteCrashBatch(Store& store, int i) {
  auto b = store.NewBatch();
  b.PutCase(CrashCaseId(i), "case " + std::to_string(i));
  b.PutAudit(CrashCaseId(i), 1, "audit " + std::to_string(i));
  b.PutOutbox(MakeRecord(static_cast<uint64_t>(i) + 1));
  b.PutOffset(CrashPartition(i), i + 1);
  Status s = store.Write(std::move(b));
  if (!s.ok()) {
    std::fprintf(stderr, "child write %d failed: %s\n", i, s.ToString().c_str());
    _exit(3);
  }
}

// Runs only inside the child spawned by CrashLeavesWholeBatches.
TEST(StoreCrashChild, Writer) {
  const char* dir = std::getenv(kChildDirEnv);
  const char* fd_text = std::getenv(kChildFdEnv);
  if (!dir || !fd_text) GTEST_SKIP() << "helper for StoreCrashTest; runs only when spawned by it";
  const int fd = std::atoi(fd_text);
  auto store = Store::Open(dir);
  if (!store.ok()) {
    std::fprintf(stderr, "child open failed: %s\n", store.status().ToString().c_str());
    _exit(2);
  }
  for (int i = 0; i < kChildBatches; ++i) {
    WriteCrashBatch(**store, i);
    const std::string line = std::to_string(i) + "\n";
    if (write(fd, line.data(), line.size()) != static_cast<ssize_t>(line.size())) _exit(4);
  }
  _exit(0);
}

TEST(StoreCrashTest, CrashLeavesWholeBatches) {
  TempDir dir;
  const std::string db = dir.file("db");

  char exe[PATH_MAX] = {};
  ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
  ASSERT_GT(n, 0);
  int fds[2];
  ASSERT_EQ(pipe2(fds, O_CLOEXEC), 0);

  // Everything the child needs is built before fork: after it, only
  // async-signal-safe calls.
  std::vector<std::string> env_strings;
  for (char** e = environ; *e; ++e) env_strings.emplace_back(*e);
  env_strings.push_back(std::string(kChildDirEnv) + "=" + db);
  env_strings.push_back(std::string(kChildFdEnv) + "=" + std::to_string(fds[1]));
  std::vector<char*> envp;
  for (auto& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::string arg0 = exe, arg1 = "--gtest_filter=StoreCrashChild.Writer";
  std::vector<char*> argv = {arg0.data(), arg1.data(), nullptr};

  const int devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
  ASSERT_GE(devnull, 0);

  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    fcntl(fds[1], F_SETFD, 0);  // keep the write end across exec
    dup2(devnull, STDOUT_FILENO);  // gtest chatter; stderr stays for diagnostics
    execve(argv[0], argv.data(), envp.data());
    _exit(127);
  }
  close(fds[1]);
  close(devnull);

  // Wait for the child to report k batches; each report follows a completed Write.
  int reported = 0;
  std::string pending;
  bool child_gone = false;
  while (reported < kReportedBeforeKill && !child_gone) {
    pollfd p{fds[0], POLLIN, 0};
    int r = poll(&p, 1, 60'000);  // bounds a hung child only
    ASSERT_GT(r, 0) << "child reported nothing for 60 s";
    char buf[4096];
    ssize_t got = read(fds[0], buf, sizeof(buf));
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) {
      child_gone = true;
      break;
    }
    pending.append(buf, static_cast<size_t>(got));
    size_t pos;
    while ((pos = pending.find('\n')) != std::string::npos) {
      EXPECT_EQ(std::stoi(pending.substr(0, pos)), reported);
      ++reported;
      pending.erase(0, pos + 1);
    }
  }
  kill(pid, SIGKILL);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  close(fds[0]);
  ASSERT_FALSE(child_gone) << "child exited early, status " << status;
  ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << "status " << status;
  ASSERT_GE(reported, kReportedBeforeKill);

  auto store = OpenOrDie(db);
  ASSERT_TRUE(store);

  std::set<std::string> cases;
  ASSERT_TRUE(store->ForEachCase([&](std::string_view id, std::string_view) {
                     cases.emplace(id);
                     return true;
                   }).ok());
  std::set<uint64_t> outbox;
  ASSERT_TRUE(store->ForEachOutbox([&](const OutboxRecord& r) {
                     outbox.insert(r.seq);
                     return true;
                   }).ok());
  const auto offsets = store->AllOffsets();

  // Batches are present exactly as a prefix 0..present-1 (writes are ordered),
  // each one whole, and the prefix covers every reported batch.
  int present = 0;
  while (cases.count(CrashCaseId(present))) ++present;
  EXPECT_GE(present, reported);
  RecordProperty("reported", reported);
  RecordProperty("present", present);
  EXPECT_EQ(cases.size(), static_cast<size_t>(present));
  EXPECT_EQ(outbox.size(), static_cast<size_t>(present));
  EXPECT_EQ(offsets.size(), static_cast<size_t>(present));
  for (int i = 0; i < present + 2; ++i) {
    const bool has_case = cases.count(CrashCaseId(i)) > 0;
    int audits = 0;
    ASSERT_TRUE(store->ForEachAudit(CrashCaseId(i), [&](uint32_t, std::string_view) { return ++audits, true; }).ok());
    const bool has_outbox = outbox.count(static_cast<uint64_t>(i) + 1) > 0;
    auto off = store->GetOffset(CrashPartition(i));
    const bool has_offset = off.has_value();
    EXPECT_EQ(has_case, i < present) << "batch " << i;
    EXPECT_EQ(audits == 1, has_case) << "batch " << i;
    EXPECT_EQ(has_outbox, has_case) << "batch " << i;
    EXPECT_EQ(has_offset, has_case) << "batch " << i;
    if (has_offset) {
      EXPECT_EQ(*off, i + 1);
    }
  }
}

}  // namespace
}  // namespace cityloop::storage
