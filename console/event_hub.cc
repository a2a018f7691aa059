#include <algorithm>

#include "console/backend.h"

namespace cityloop::console {

EventHub::Subscription::~Subscription() { hub_->Unsubscribe(id_); }

std::unique_ptr<EventHub::Subscription> EventHub::Subscribe(Callback fn) {
  std::lock_guard<std::mutex> lock(mu_);
  const uint64_t id = next_id_++;
  subscribers_.emplace_back(id, std::move(fn));
  return std::unique_ptr<Subscription>(new Subscription(this, id));
}

void EventHub::Unsubscribe(uint64_t id) {
  // Under the lock Publish holds while calling back: once this returns, the
  // callback is not running and never runs again.
  std::lock_guard<std::mutex> lock(mu_);
  subscribers_.erase(std::remove_if(subscribers_.begin(), subscribers_.end(),
                                    [id](const auto& s) { return s.first == id; }),
                     subscribers_.end());
}

void EventHub::Publish(const std::vector<StreamEvent>& events) {
  if (events.empty()) return;
  std::lock_guard<std::mutex> lock(mu_);
  for (const StreamEvent& e : events) {
    for (auto& [id, fn] : subscribers_) fn(e);
    last_seq_ = std::max(last_seq_, e.seq);
  }
}

uint64_t EventHub::last_seq() const {
  std::lock_guard<std::mutex> lock(mu_);
  return last_seq_;
}

size_t EventHub::subscribers() const {
  std::lock_guard<std::mutex> lock(mu_);
  return subscribers_.size();
}

}  // namespace cityloop::console
