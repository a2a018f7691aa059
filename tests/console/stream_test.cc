// GET /api/v1/stream: live order, resuming from the store without gap or
// duplicate (also while events are published during the resume), the gap
// event, filters and district scope, slow clients dropped without slowing
// the others, stream limits and heartbeats.
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "tests/console/api_fixture.h"

namespace cityloop::console::testing {
namespace {

using nlohmann::json;
using ::cityloop::testing::WaitFor;

class StreamTest : public ApiFixture {
 protected:
  std::unique_ptr<SseClient> Open(const std::string& query = "", const std::string& token = kAdmin,
                                  Headers extra = {}, int rcvbuf = 0) {
    auto c = std::make_unique<SseClient>(port(), "/api/v1/stream" + query, Auth(token, std::move(extra)), rcvbuf);
    EXPECT_EQ(c->status(), 200) << c->head().body;
    return c;
  }
  uint64_t EmitCase(const std::string& type, const std::string& id, const std::string& district = "furong",
                    const std::string& dept = "drainage", const std::string& category = "waterlogging") {
    return backend_.Emit(type, id, FakeBackend::CaseData(id, district, dept, category));
  }
  // The next n events' ids (as numbers); fewer when the stream ends or stalls.
  static std::vector<uint64_t> Ids(SseClient& c, size_t n) {
    std::vector<uint64_t> ids;
    while (ids.size() < n) {
      auto e = c.Next();
      if (!e) break;
      ids.push_back(e->id.empty() ? 0 : std::stoull(e->id));
    }
    return ids;
  }
  static std::vector<uint64_t> Range(uint64_t from, uint64_t to) {
    std::vector<uint64_t> v;
    for (uint64_t i = from; i <= to; ++i) v.push_back(i);
    return v;
  }
};

TEST_F(StreamTest, HeadersAndLiveEventsInOrder) {
  Start();
  auto c = Open();
  EXPECT_EQ(c->head().header("Content-Type"), "text/event-stream; charset=utf-8");
  EXPECT_EQ(c->head().header("Cache-Control"), "no-cache");
  std::vector<uint64_t> seqs;
  seqs.push_back(EmitCase("city.case.opened", "CL-1"));
  seqs.push_back(EmitCase("city.case.dispatched", "CL-1"));
  seqs.push_back(backend_.Emit("city.dispatch.order", "CL-1", FakeBackend::CaseData("CL-1", "furong"), "cityloop.dispatch"));
  seqs.push_back(EmitCase("city.case.acknowledged", "CL-1"));
  for (uint64_t s : seqs) {
    auto e = c->Next();
    ASSERT_TRUE(e);
    EXPECT_EQ(e->id, std::to_string(s));
    const json j = e->json();
    ASSERT_TRUE(j.is_object()) << e->data;
    EXPECT_EQ(e->type, j["type"]);
    EXPECT_EQ(j["subject"], "CL-1");
    EXPECT_EQ(j["specversion"], "1.0");
  }
  EXPECT_EQ(server_->stream_clients(), 1u);
  EXPECT_EQ(metrics_.GetGauge("cityloop_stream_clients", "").value(), 1.0);
}

TEST_F(StreamTest, ResumesFromTheStoreWithoutGapOrDuplicate) {
  for (int i = 0; i < 10; ++i) EmitCase("city.case.updated", "CL-" + std::to_string(i));  // seq 1..10
  Start();
  auto c = Open("", kAdmin, {{"Last-Event-ID", "4"}});
  EXPECT_EQ(Ids(*c, 6), Range(5, 10));
  EmitCase("city.case.updated", "CL-live");
  EXPECT_EQ(Ids(*c, 1), Range(11, 11));
  // The same with the query parameter.
  auto q = Open("?last_event_id=8");
  EXPECT_EQ(Ids(*q, 3), Range(9, 11));
}

TEST_F(StreamTest, PublishingDuringTheResumeLosesAndRepeatsNothing) {
  // 800 stored events: the resume reads several pages (of 256). While it reads, the
  // engine writes and publishes more, and also stores some it publishes only later.
  for (int i = 0; i < 800; ++i) EmitCase("city.case.updated", "CL-a");
  int calls = 0;
  backend_.OnEventsAfter([&](uint64_t) {
    ++calls;
    if (calls == 1) {
      EmitCase("city.case.updated", "CL-b");  // 801: stored and published mid-resume
      EmitCase("city.case.updated", "CL-b");  // 802
    } else if (calls == 2) {
      backend_.Store("city.case.updated", "CL-c", FakeBackend::CaseData("CL-c", "furong"));  // 803: stored, not yet published
    }
  });
  Start();
  auto c = Open("", kAdmin, {{"Last-Event-ID", "100"}});
  auto ids = Ids(*c, 703);  // 101..803
  backend_.OnEventsAfter(nullptr);
  backend_.PublishStored(803, 803);  // published late: already sent from the store
  EmitCase("city.case.updated", "CL-d");  // 804
  auto tail = Ids(*c, 1);
  ids.insert(ids.end(), tail.begin(), tail.end());
  EXPECT_EQ(ids, Range(101, 804));
  EXPECT_GE(backend_.events_after_calls(), 3);
}

TEST_F(StreamTest, GapEventWhenTheStoreNoLongerHasTheEvents) {
  for (int i = 0; i < 30; ++i) EmitCase("city.case.updated", "CL-1");
  backend_.SetRetention(10);  // keeps 21..30
  Start();
  auto c = Open("", kAdmin, {{"Last-Event-ID", "5"}});
  auto gap = c->Next();
  ASSERT_TRUE(gap);
  EXPECT_EQ(gap->type, "gap");
  EXPECT_TRUE(gap->id.empty());
  const json g = gap->json();
  EXPECT_EQ(g["requested_after"], 5);
  EXPECT_EQ(g["resumes_at"], 21);
  EXPECT_EQ(g["missed"], 15);
  EXPECT_EQ(Ids(*c, 10), Range(21, 30));

  // Resuming right before the first stored event is no gap.
  auto d = Open("", kAdmin, {{"Last-Event-ID", "20"}});
  auto first = d->Next();
  ASSERT_TRUE(first);
  EXPECT_EQ(first->id, "21");
}

TEST_F(StreamTest, Filters) {
  Start();
  auto by_type = Open("?type=city.dispatch.,city.case.closed");
  auto by_dept = Open("?dept=municipal");
  auto by_district = Open("?district=yuelu");
  auto by_grid = Open("?grid=430104001001");
  auto by_category = Open("?category=gas_leak");
  auto by_case = Open("?case=CL-2");
  EmitCase("city.case.opened", "CL-1");                                           // 1
  backend_.Emit("city.dispatch.order", "CL-1", FakeBackend::CaseData("CL-1", "furong"));  // 2
  EmitCase("city.case.opened", "CL-2", "yuelu", "municipal");                     // 3
  EmitCase("city.case.closed", "CL-3", "furong", "drainage", "gas_leak");          // 4
  EmitCase("city.case.handled", "CL-2", "yuelu", "municipal");                    // 5
  // A marker every filter lets through, to know nothing else is coming.
  auto marker = [&] {
    return backend_.Emit("city.dispatch.order", "CL-2",
                         FakeBackend::CaseData("CL-2", "yuelu", "municipal", "gas_leak"));  // 6
  };
  const uint64_t m = marker();
  EXPECT_EQ(Ids(*by_type, 3), (std::vector<uint64_t>{2, 4, m}));
  EXPECT_EQ(Ids(*by_dept, 3), (std::vector<uint64_t>{3, 5, m}));
  EXPECT_EQ(Ids(*by_district, 3), (std::vector<uint64_t>{3, 5, m}));
  EXPECT_EQ(Ids(*by_grid, 3), (std::vector<uint64_t>{3, 5, m}));
  EXPECT_EQ(Ids(*by_category, 2), (std::vector<uint64_t>{4, m}));
  EXPECT_EQ(Ids(*by_case, 3), (std::vector<uint64_t>{3, 5, m}));
}

TEST_F(StreamTest, DistrictScopedTokensSeeTheirDistrictsAndTheirOwnRejections) {
  Start();
  auto scoped = Open("", kOpFurong);
  auto all = Open("", kOperator);
  EmitCase("city.case.opened", "CL-Y", "yuelu");  // 1: not for op-furong
  EmitCase("city.case.opened", "CL-F", "furong");  // 2
  // Grid only: the district comes from the cell.
  backend_.Emit("city.case.updated", "CL-G", {{"grid", "430104001001"}});  // 3: yuelu
  backend_.Emit("city.command.rejected", "CL-F", {{"command_id", "c1"}, {"actor", "op-furong"}});  // 4
  backend_.Emit("city.command.rejected", "CL-F", {{"command_id", "c2"}, {"actor", "someone"}});    // 5
  backend_.Emit("city.case.updated", "CL-?", json::object());                                      // 6: no district
  EmitCase("city.case.closed", "CL-F", "furong");                                                  // 7
  EXPECT_EQ(Ids(*scoped, 3), (std::vector<uint64_t>{2, 4, 7}));
  EXPECT_EQ(Ids(*all, 7), Range(1, 7));
  // Resuming from the store is scoped the same way.
  auto resumed = Open("", kOpFurong, {{"Last-Event-ID", "0"}});
  EXPECT_EQ(Ids(*resumed, 3), (std::vector<uint64_t>{2, 4, 7}));
}

TEST_F(StreamTest, SlowClientIsDroppedWhileAFastOneKeepsReceiving) {
  options_.stream_queue_limit = 8;
  Start();
  auto fast = Open();
  auto slow = Open("", kOperator, {}, /*rcvbuf=*/4096);  // never reads
  const json big{{"case_id", "CL-1"}, {"district", "furong"}, {"pad", std::string(4000, 'p')}};
  auto dropped = [&] { return Counter("cityloop_stream_dropped_clients_total") > 0; };
  uint64_t last = 0;
  int published = 0;
  // Batches below the limit; the fast client reads each one before the next.
  while (!dropped() && published < 20000) {
    for (int i = 0; i < 4; ++i) last = backend_.Emit("city.case.updated", "CL-1", big);
    published += 4;
    auto got = Ids(*fast, 4);
    ASSERT_EQ(got.size(), 4u);
    ASSERT_EQ(got.back(), last);
  }
  ASSERT_TRUE(dropped()) << "published " << published;
  EXPECT_EQ(Counter("cityloop_stream_dropped_clients_total", {{"reason", "queue_full"}}), 1);
  EXPECT_TRUE(WaitFor([&] { return server_->stream_clients() == 1; }));
  EXPECT_TRUE(slow->ServerClosed());
  // The fast one is still served.
  const uint64_t next = EmitCase("city.case.closed", "CL-1");
  EXPECT_EQ(Ids(*fast, 1), (std::vector<uint64_t>{next}));
}

TEST_F(StreamTest, ClientTooFarBehindWhileResumingIsDropped) {
  options_.stream_queue_limit = 4;
  for (int i = 0; i < 5; ++i) EmitCase("city.case.updated", "CL-1");
  // While the resume reads the store, more live events arrive than the client may buffer.
  backend_.OnEventsAfter([&](uint64_t) {
    backend_.OnEventsAfter(nullptr);
    for (int i = 0; i < 6; ++i) EmitCase("city.case.updated", "CL-1");
    server_->WaitEventsDelivered();  // they reach the stream while it still resumes
  });
  Start();
  auto c = Open("", kAdmin, {{"Last-Event-ID", "1"}});
  EXPECT_TRUE(c->ServerClosed());
  EXPECT_TRUE(WaitFor([&] { return Counter("cityloop_stream_dropped_clients_total") == 1; }));
  EXPECT_TRUE(WaitFor([&] { return server_->stream_clients() == 0; }));
}

TEST_F(StreamTest, StreamLimits) {
  options_.max_streams = 3;
  options_.max_streams_per_token = 2;
  Start();
  auto a = Open("", kAdmin);
  auto b = Open("", kAdmin);
  SseClient third_same(port(), "/api/v1/stream", Auth(kAdmin));
  EXPECT_EQ(third_same.status(), 429);
  EXPECT_EQ(third_same.head().error_code(), "too_many_streams");
  auto c = Open("", kViewer);
  SseClient over(port(), "/api/v1/stream", Auth(kOperator));
  EXPECT_EQ(over.status(), 503);
  EXPECT_EQ(over.head().error_code(), "too_many_streams");
  EXPECT_FALSE(over.head().header("Retry-After").empty());
  EXPECT_EQ(server_->stream_clients(), 3u);
  // A client that leaves frees its place.
  a.reset();
  EXPECT_TRUE(WaitFor([&] { return server_->stream_clients() == 2; }));
  auto d = Open("", kOperator);
  EXPECT_EQ(d->status(), 200);
}

TEST_F(StreamTest, HeartbeatsWhenIdle) {
  options_.heartbeat_ms = 50;
  Start();
  auto c = Open();
  // Reading blocks until something arrives; heartbeats are comments, not events.
  EXPECT_TRUE(WaitFor([&] {
    c->Next(std::chrono::milliseconds(100));
    return c->comments() >= 2;
  }, std::chrono::seconds(20)));
  const uint64_t s = EmitCase("city.case.opened", "CL-1");
  EXPECT_EQ(Ids(*c, 1), (std::vector<uint64_t>{s}));
}

TEST_F(StreamTest, BadStreamParameters) {
  Start();
  for (const auto& [query, param] : std::vector<std::pair<std::string, std::string>>{
           {"?type=city%20case", "type"}, {"?type=,", "type"}, {"?district=a%2Fb", "district"},
           {"?case=", "case"}, {"?last_event_id=ten", "last_event_id"}, {"?colour=red", "colour"}}) {
    SseClient c(port(), "/api/v1/stream" + query, Auth(kAdmin));
    EXPECT_EQ(c.status(), 400) << query;
    EXPECT_EQ(c.head().json()["error"]["parameter"], param) << query;
  }
  SseClient bad_header(port(), "/api/v1/stream", Auth(kAdmin, {{"Last-Event-ID", "-1"}}));
  EXPECT_EQ(bad_header.status(), 400);
  EXPECT_EQ(bad_header.head().json()["error"]["parameter"], "Last-Event-ID");
  SseClient no_token(port(), "/api/v1/stream?access_token=" + std::string(kAdmin), {});
  EXPECT_EQ(no_token.status(), 401);
  EXPECT_EQ(server_->stream_clients(), 0u);
}

TEST_F(StreamTest, StopEndsStreams) {
  Start();
  auto c = Open();
  server_->Stop();
  EXPECT_TRUE(c->ServerClosed());
  EXPECT_EQ(server_->stream_clients(), 0u);
  // Publishing after the stop reaches nobody and breaks nothing.
  EmitCase("city.case.opened", "CL-1");
  EXPECT_EQ(backend_.hub().subscribers(), 0u);
}

}  // namespace
}  // namespace cityloop::console::testing
