#include "console/live_stream.h"

#include <algorithm>
#include <utility>

#include <spdlog/spdlog.h>

namespace cityloop::console {

using nlohmann::json;

namespace {

std::string Str(const json& obj, const char* key) {
  if (!obj.is_object()) return "";
  auto it = obj.find(key);
  return it != obj.end() && it->is_string() ? it->get<std::string>() : std::string();
}

// One line of an SSE field: no CR or LF inside.
std::string OneLine(std::string s) {
  for (char& c : s) {
    if (c == '\r' || c == '\n') c = ' ';
  }
  return s;
}

}  // namespace

std::shared_ptr<const EventView> ViewEvent(const StreamEvent& e, const Backend* backend) {
  auto v = std::make_shared<EventView>();
  v->seq = e.seq;
  v->topic = e.topic;
  const json j = json::parse(e.json, nullptr, /*allow_exceptions=*/false);
  if (j.is_object()) {
    v->type = Str(j, "type");
    v->subject = Str(j, "subject");
    const json& data = j.contains("data") ? j["data"] : json();
    v->district = Str(data, "district");
    v->department = Str(data, "department");
    v->grid = Str(data, "grid");
    v->category = Str(data, "category");
    v->actor = Str(data, "actor");
    v->command_id = Str(data, "command_id");
    v->reason = Str(data, "reason");
    v->message = Str(data, "message");
    if (v->subject.empty()) v->subject = Str(data, "case_id");
  }
  if (v->district.empty() && !v->grid.empty() && backend) v->district = backend->DistrictOfCell(v->grid);
  std::string frame = "id: " + std::to_string(e.seq) + "\nevent: " + OneLine(v->type.empty() ? "message" : v->type) + "\n";
  // The JSON as published is one line; any raw line break still becomes its own data line.
  size_t start = 0;
  const std::string& text = e.json;
  while (true) {
    const size_t nl = text.find_first_of("\r\n", start);
    frame += "data: " + text.substr(start, nl == std::string::npos ? std::string::npos : nl - start) + "\n";
    if (nl == std::string::npos) break;
    start = nl + 1;
    if (text[nl] == '\r' && start < text.size() && text[start] == '\n') ++start;
  }
  frame += "\n";
  v->frame = std::move(frame);
  return v;
}

// ---- EventFanout ------------------------------------------------------------

EventFanout::EventFanout(Backend& backend) : backend_(backend) {
  worker_ = std::thread([this] { Run(); });
  sub_ = backend_.hub().Subscribe([this](const StreamEvent& e) { OnEvent(e); });
}

EventFanout::~EventFanout() { Detach(); }

void EventFanout::Detach() {
  sub_.reset();  // no OnEvent after this
  {
    std::lock_guard<std::mutex> lock(queue_mu_);
    stopping_ = true;
  }
  queue_cv_.notify_all();
  if (worker_.joinable()) worker_.join();  // it delivers what is queued first
}

void EventFanout::Add(EventListener* l) {
  std::lock_guard<std::mutex> lock(mu_);
  listeners_.push_back(l);
}

void EventFanout::Remove(EventListener* l) {
  std::lock_guard<std::mutex> lock(mu_);
  listeners_.erase(std::remove(listeners_.begin(), listeners_.end(), l), listeners_.end());
}

size_t EventFanout::listeners() const {
  std::lock_guard<std::mutex> lock(mu_);
  return listeners_.size();
}

void EventFanout::OnEvent(const StreamEvent& e) {
  {
    std::unique_lock<std::mutex> lock(queue_mu_);
    queue_cv_.wait(lock, [&] { return queue_.size() < kMaxQueued || stopping_; });
    if (stopping_) return;
    queue_.push_back(e);
    ++queued_;
  }
  queue_cv_.notify_all();
}

void EventFanout::Run() {
  std::vector<StreamEvent> batch;
  while (true) {
    {
      std::unique_lock<std::mutex> lock(queue_mu_);
      queue_cv_.wait(lock, [&] { return !queue_.empty() || stopping_; });
      if (queue_.empty()) return;  // stopping, and everything delivered
      // Gather what follows within kGather: each client then gets one write
      // for all of it (while the engine catches up it publishes every few ms).
      queue_cv_.wait_for(lock, kGather, [&] { return stopping_ || queue_.size() >= kMaxQueued / 2; });
      batch.assign(std::make_move_iterator(queue_.begin()), std::make_move_iterator(queue_.end()));
      queue_.clear();
    }
    queue_cv_.notify_all();  // room for a waiting publisher
    Deliver(batch);
    {
      std::lock_guard<std::mutex> lock(queue_mu_);
      delivered_ += batch.size();
    }
    queue_cv_.notify_all();
    batch.clear();
  }
}

void EventFanout::WaitDelivered() {
  std::unique_lock<std::mutex> lock(queue_mu_);
  const uint64_t target = queued_;
  queue_cv_.wait(lock, [&] { return delivered_ >= target || stopping_; });
}

void EventFanout::Deliver(const std::vector<StreamEvent>& events) {
  std::lock_guard<std::mutex> lock(mu_);
  if (listeners_.empty()) return;
  std::vector<std::shared_ptr<const EventView>> views;
  views.reserve(events.size());
  for (const StreamEvent& e : events) views.push_back(ViewEvent(e, &backend_));
  for (EventListener* l : listeners_) {
    try {
      l->OnEvents(views);
    } catch (const std::exception& ex) {
      spdlog::error("api event listener threw: {}", ex.what());
    }
  }
}

// ---- StreamFilter -------------------------------------------------------------

bool StreamFilter::Match(const EventView& e) const {
  if (!type_prefixes.empty() &&
      std::none_of(type_prefixes.begin(), type_prefixes.end(),
                   [&](const std::string& p) { return e.type.compare(0, p.size(), p) == 0; })) {
    return false;
  }
  if (!department.empty() && e.department != department) return false;
  if (!district.empty() && e.district != district) return false;
  if (!grid.empty() && e.grid != grid) return false;
  if (!category.empty() && e.category != category) return false;
  if (!case_id.empty() && e.subject != case_id) return false;
  if (who.scoped()) {
    // A district-scoped token sees its districts' events, and the rejections
    // of its own commands (they carry no district).
    if (e.district.empty()) return e.type == "city.command.rejected" && e.actor == who.name;
    return who.Sees(e.district);
  }
  return true;
}

// ---- LiveStream ---------------------------------------------------------------

std::shared_ptr<LiveStream> LiveStream::Make(Backend& backend, EventFanout& fanout, StreamFilter filter,
                                             Options options, OnEnd on_end) {
  std::shared_ptr<LiveStream> s(
      new LiveStream(backend, fanout, std::move(filter), std::move(options), std::move(on_end)));
  // A resumed stream takes Last-Event-ID as its place in every sequence (exact
  // with one; with shards, a shard numbering behind it loses what it had between).
  s->last_seq_.assign(static_cast<size_t>(std::max(1, backend.event_sequences())), s->options_.resume_after.value_or(0));
  fanout.Add(s.get());
  s->registered_ = true;
  return s;
}

LiveStream::LiveStream(Backend& backend, EventFanout& fanout, StreamFilter filter, Options options, OnEnd on_end)
    : backend_(backend),
      fanout_(fanout),
      filter_(std::move(filter)),
      options_(std::move(options)),
      on_end_(std::move(on_end)) {}

LiveStream::~LiveStream() {
  if (registered_) fanout_.Remove(this);
  if (!ended_ && on_end_) on_end_(StreamEnd::kAborted, sent_);
}

std::shared_ptr<StreamResponse> LiveStream::Response(std::chrono::milliseconds heartbeat,
                                                     std::chrono::milliseconds write_timeout, int send_buffer_bytes) {
  auto r = std::make_shared<StreamResponse>();
  auto self = shared_from_this();
  r->start = [self](std::shared_ptr<StreamSink> sink) { self->Start(std::move(sink)); };
  r->on_close = [self](StreamEnd why) { self->Closed(why); };
  r->max_queued = options_.queue_limit;
  r->heartbeat = heartbeat;
  r->heartbeat_text = ": heartbeat\n\n";
  r->write_timeout = write_timeout;
  r->send_buffer_bytes = send_buffer_bytes;
  return r;
}

bool LiveStream::WriteLocked(const std::string& bytes) {
  if (closed_ || !sink_) return false;
  if (!sink_->Write(bytes)) {
    closed_ = true;
    return false;
  }
  return true;
}

void LiveStream::OnEvent(const std::shared_ptr<const EventView>& event) { OnEvents({event}); }

void LiveStream::OnEvents(const std::vector<std::shared_ptr<const EventView>>& events) {
  std::lock_guard<std::mutex> lock(mu_);
  std::string chunk;  // the live events of the batch, one write
  uint64_t count = 0;
  for (const auto& event : events) {
    if (closed_) return;
    if (!filter_.Match(*event)) continue;
    if (!live_) {
      if (buffer_.size() >= options_.queue_limit) {
        // Too far behind before it even went live: drop it (it may resume).
        closed_ = overflowed_ = true;
        buffer_.clear();
        if (sink_) sink_->Abort(StreamEnd::kOverflow);
        return;
      }
      buffer_.push_back(event);
      continue;
    }
    if (Seen(event->seq)) continue;
    Mark(event->seq);
    chunk += event->frame;
    ++count;
  }
  if (!chunk.empty() && WriteLocked(chunk)) sent_ += count;
}

void LiveStream::Start(std::shared_ptr<StreamSink> sink) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    sink_ = sink;
    if (closed_) {
      sink->Abort(overflowed_ ? StreamEnd::kOverflow : StreamEnd::kAborted);
      return;
    }
    // Tell EventSource how soon to come back after a drop.
    WriteLocked("retry: 2000\n\n");
  }
  if (!options_.resume_after) return GoLive();
  const uint64_t after = *options_.resume_after;
  const uint64_t first = backend_.first_seq();
  const uint64_t newest = backend_.hub().last_seq();
  std::optional<uint64_t> resumes_at;
  if (first > after + 1) {
    resumes_at = first;
  } else if (first == 0 && newest > after) {
    resumes_at = newest + 1;  // nothing stored any more: live from here
  }
  if (resumes_at) {
    const json gap{{"requested_after", after},
                   {"resumes_at", *resumes_at},
                   {"missed", *resumes_at - after - 1},
                   {"message", "events after " + std::to_string(after) + " up to " + std::to_string(*resumes_at - 1) +
                                   " are no longer stored; resuming at " + std::to_string(*resumes_at)}};
    std::lock_guard<std::mutex> lock(mu_);
    if (!WriteLocked("event: gap\ndata: " + gap.dump() + "\n\n")) return;
  }
  ReplayPage();
}

void LiveStream::ReplayPage() {
  uint64_t after = 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (closed_) return;
    // Pages go on from the previous page's end; the first from the earliest place.
    after = replay_after_ ? *replay_after_ : *std::min_element(last_seq_.begin(), last_seq_.end());
  }
  std::vector<StreamEvent> page;
  const Status st = backend_.EventsAfter(after, options_.page, &page);
  if (!st.ok()) {
    spdlog::warn("api stream: reading stored events after {} failed: {}", after, st.ToString());
    std::lock_guard<std::mutex> lock(mu_);
    closed_ = true;
    if (sink_) {
      sink_->Write("event: error\ndata: " +
                   json{{"message", "stored events could not be read; reconnect to resume"}}.dump() + "\n\n");
      sink_->End();
    }
    return;
  }
  std::string chunk;
  uint64_t count = 0;
  std::vector<uint64_t> seen;
  {
    std::lock_guard<std::mutex> lock(mu_);
    seen = last_seq_;
  }
  uint64_t last = after;
  for (const StreamEvent& e : page) {
    last = std::max(last, e.seq);
    if (e.seq <= seen[e.seq % seen.size()]) continue;
    seen[e.seq % seen.size()] = e.seq;
    auto view = ViewEvent(e, &backend_);
    if (!filter_.Match(*view)) continue;
    chunk += view->frame;
    ++count;
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (closed_) return;
    for (size_t i = 0; i < seen.size(); ++i) last_seq_[i] = std::max(last_seq_[i], seen[i]);
    replay_after_ = last;
    if (!chunk.empty()) {
      if (!WriteLocked(chunk)) return;
      sent_ += count;
    }
  }
  if (page.size() < options_.page) return GoLive();
  std::weak_ptr<LiveStream> weak = weak_from_this();
  std::shared_ptr<StreamSink> sink;
  {
    std::lock_guard<std::mutex> lock(mu_);
    sink = sink_;
  }
  sink->WhenDrained([weak] {
    if (auto s = weak.lock()) s->ReplayPage();
  });
}

void LiveStream::GoLive() {
  std::lock_guard<std::mutex> lock(mu_);
  if (closed_) return;
  std::string chunk;
  uint64_t count = 0;
  for (const auto& e : buffer_) {
    if (Seen(e->seq)) continue;
    Mark(e->seq);
    chunk += e->frame;
    ++count;
  }
  buffer_.clear();
  live_ = true;
  if (!chunk.empty() && WriteLocked(chunk)) sent_ += count;
}

void LiveStream::Closed(StreamEnd why) {
  uint64_t sent = 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    closed_ = true;
    buffer_.clear();
    sent = sent_;
  }
  if (ended_) return;
  ended_ = true;
  if (on_end_) on_end_(why, sent);
}

}  // namespace cityloop::console
