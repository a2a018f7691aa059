// The live side of the API: one subscription to the Backend's EventHub fanned
// out to the API's listeners (SSE clients and actions waiting for their
// outcome), and the SSE client itself.
//
// EventFanout parses each published event once (type, subject, district,
// department, grid, category, command fields) and formats its SSE frame once,
// on its own thread: the publishing thread (the engine's) only queues the
// event, so 200 clients cost the engine a queue push, not 200 socket-queue
// writes (docs/PERFORMANCE.md, "Console"). Listeners are called on that
// thread, in seq order, and only queue.
//
// LiveStream is one GET /api/v1/stream client. It registers with the fanout
// when it is made (so nothing published from then on is missed, only
// buffered), then on Start replays from the store what follows the client's
// Last-Event-ID (EventsAfter, a page at a time, the next page once the
// previous one is written), then sends the buffered events it has not sent
// (seq > the last one sent) and goes live. An id older than the store's
// first_seq() gets an `event: gap` first. Buffer and socket queue are
// bounded (api.stream_queue_limit): a client over its limit is disconnected,
// never waited for.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "console/auth.h"
#include "console/backend.h"
#include "console/http_server.h"

namespace cityloop::console {

// One published event as the API's filters see it.
struct EventView {
  uint64_t seq = 0;
  std::string topic;
  std::string type;        // CloudEvents type
  std::string subject;     // the case id
  std::string district;    // data.district, else the district of data.grid
  std::string department;  // data.department
  std::string grid;        // data.grid
  std::string category;    // data.category
  // city.command.rejected: data.actor, data.command_id, data.reason, data.message.
  std::string actor, command_id, reason, message;
  std::string frame;  // "id: <seq>\nevent: <type>\ndata: <json>\n\n"
};
// backend (may be null) resolves a district from data.grid when data has none.
std::shared_ptr<const EventView> ViewEvent(const StreamEvent& e, const Backend* backend);

class EventListener {
 public:
  virtual ~EventListener() = default;
  // On the fan-out thread, for every event in seq order; must not block.
  virtual void OnEvent(const std::shared_ptr<const EventView>& event) = 0;
  // The events queued since the last call, in seq order (by default one
  // OnEvent each); a stream writes them to its client in one go.
  virtual void OnEvents(const std::vector<std::shared_ptr<const EventView>>& events) {
    for (const auto& e : events) OnEvent(e);
  }
};

class EventFanout {
 public:
  explicit EventFanout(Backend& backend);  // subscribes to backend.hub()
  ~EventFanout();                          // Detach()es
  EventFanout(const EventFanout&) = delete;
  EventFanout& operator=(const EventFanout&) = delete;

  // Unsubscribes from the hub and delivers what is queued: no listener is
  // called after it returns.
  void Detach();
  void Add(EventListener* l);
  // After Remove returns the listener is not being called and never will be.
  void Remove(EventListener* l);
  size_t listeners() const;
  // Blocks until every event published so far has reached the listeners (or
  // Detach began).
  void WaitDelivered();

 private:
  // Events queued beyond this make the publisher wait (it never drops one).
  static constexpr size_t kMaxQueued = 4096;
  // How long the fan-out gathers events before it writes them to the clients.
  static constexpr std::chrono::milliseconds kGather{5};
  void OnEvent(const StreamEvent& e);  // the publishing thread: queue it
  void Run();                          // the fan-out thread
  void Deliver(const std::vector<StreamEvent>& events);
  Backend& backend_;
  mutable std::mutex mu_;  // listeners_; held while delivering
  std::vector<EventListener*> listeners_;
  std::mutex queue_mu_;
  std::condition_variable queue_cv_;  // queued, delivered, or stopping
  std::deque<StreamEvent> queue_;
  uint64_t queued_ = 0, delivered_ = 0;
  bool stopping_ = false;
  std::thread worker_;
  std::unique_ptr<EventHub::Subscription> sub_;
};

// What a stream client asked for (query parameters) and may see (its token).
struct StreamFilter {
  std::vector<std::string> type_prefixes;  // any of them; empty: every type
  std::string department, district, grid, category, case_id;  // "" = any
  Principal who;
  bool Match(const EventView& e) const;
};

class LiveStream final : public EventListener, public std::enable_shared_from_this<LiveStream> {
 public:
  struct Options {
    std::optional<uint64_t> resume_after;  // Last-Event-ID
    size_t queue_limit = 1000;             // buffered events before going live
    size_t page = 256;                     // events per store read while replaying
  };
  // Called once when the stream ends (on the connection's strand).
  using OnEnd = std::function<void(StreamEnd why, uint64_t events_sent)>;

  // Registers with fanout at once. fanout and backend must outlive it.
  static std::shared_ptr<LiveStream> Make(Backend& backend, EventFanout& fanout, StreamFilter filter, Options options,
                                          OnEnd on_end);
  ~LiveStream() override;  // unregisters

  // The StreamResponse that runs this client (holds it until the stream ends).
  std::shared_ptr<StreamResponse> Response(std::chrono::milliseconds heartbeat, std::chrono::milliseconds write_timeout,
                                           int send_buffer_bytes);

  void OnEvent(const std::shared_ptr<const EventView>& event) override;
  void OnEvents(const std::vector<std::shared_ptr<const EventView>>& events) override;

 private:
  LiveStream(Backend& backend, EventFanout& fanout, StreamFilter filter, Options options, OnEnd on_end);
  void Start(std::shared_ptr<StreamSink> sink);
  void ReplayPage();
  void GoLive();
  void Closed(StreamEnd why);
  bool WriteLocked(const std::string& bytes);

  Backend& backend_;
  EventFanout& fanout_;
  const StreamFilter filter_;
  const Options options_;
  OnEnd on_end_;

  std::mutex mu_;
  std::shared_ptr<StreamSink> sink_;
  bool live_ = false;
  bool closed_ = false;
  bool overflowed_ = false;
  bool ended_ = false;
  std::deque<std::shared_ptr<const EventView>> buffer_;
  // Per event sequence (Backend::event_sequences): every event of it up to
  // here was sent or filtered out.
  std::vector<uint64_t> last_seq_;
  bool Seen(uint64_t seq) const { return seq <= last_seq_[seq % last_seq_.size()]; }
  void Mark(uint64_t seq) { last_seq_[seq % last_seq_.size()] = seq; }
  std::optional<uint64_t> replay_after_;  // where the next page of stored events starts
  uint64_t sent_ = 0;
  bool registered_ = false;
};

}  // namespace cityloop::console
