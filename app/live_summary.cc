#include "app/live_summary.h"

#include <fmt/format.h>

namespace cityloop::app {
namespace {

std::string Breakdown(const std::map<std::string, int64_t>& counts) {
  if (counts.empty()) return "-";
  std::string out;
  for (const auto& [name, n] : counts) out += (out.empty() ? "" : " · ") + name + " " + std::to_string(n);
  return out;
}

}  // namespace

LiveSummary::LiveSummary(const MetricsRegistry& metrics, const Clock& clock, int utc_offset_minutes, std::FILE* out)
    : metrics_(metrics), clock_(clock), utc_offset_minutes_(utc_offset_minutes), out_(out) {
  last_ms_ = clock_.now_ms();
}

void LiveSummary::MaybePrint(int64_t interval_ms) {
  if (clock_.now_ms() - last_ms_ >= interval_ms) Print();
}

std::string LiveSummary::Render() {
  const int64_t now = clock_.now_ms();
  const int64_t messages = metrics_.CounterTotal("cityloop_ingest_messages_total");
  const double secs = std::max<int64_t>(1, now - last_ms_) / 1000.0;
  const double rate = static_cast<double>(messages - last_messages_) / secs;
  last_ms_ = now;
  last_messages_ = messages;
  const int64_t local = now + int64_t{utc_offset_minutes_} * 60000;
  const int64_t in_day = ((local % 86400000) + 86400000) % 86400000 / 1000;
  const int64_t opened = metrics_.CounterTotal("cityloop_cases_opened_total");
  return fmt::format(
      "cityloop {:02}:{:02}:{:02}  in {:.1f}/s  read {}  accepted {}  rejected {}  signals {}  cases opened {}\n"
      "  by category    {}\n  by department  {}\n  by district    {}\n",
      in_day / 3600, in_day / 60 % 60, in_day % 60, rate, messages,
      metrics_.CounterTotal("cityloop_ingest_accepted_total"), metrics_.CounterTotal("cityloop_ingest_rejected_total"),
      metrics_.CounterTotal("cityloop_signals_total"), opened,
      Breakdown(metrics_.CounterBy("cityloop_cases_opened_total", "category")),
      Breakdown(metrics_.CounterBy("cityloop_cases_opened_total", "department")),
      Breakdown(metrics_.CounterBy("cityloop_cases_opened_total", "district")));
}

void LiveSummary::Print() {
  const std::string text = Render();
  std::fputs(text.c_str(), out_);
  std::fflush(out_);
}

}  // namespace cityloop::app
