#include "core/metrics.h"

#include <algorithm>
#include <sstream>

namespace cityloop {

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)), buckets_(new std::atomic<int64_t>[bounds_.size() + 1]) {
  std::sort(bounds_.begin(), bounds_.end());
  for (size_t i = 0; i <= bounds_.size(); ++i) buckets_[i].store(0);
}

void Histogram::Observe(double v) {
  const size_t i = static_cast<size_t>(std::lower_bound(bounds_.begin(), bounds_.end(), v) - bounds_.begin());
  buckets_[i].fetch_add(1, std::memory_order_relaxed);
  count_.fetch_add(1, std::memory_order_relaxed);
  double cur = sum_.load(std::memory_order_relaxed);
  while (!sum_.compare_exchange_weak(cur, cur + v, std::memory_order_relaxed)) {
  }
}

std::vector<int64_t> Histogram::bucket_counts() const {
  std::vector<int64_t> out(bounds_.size() + 1);
  for (size_t i = 0; i < out.size(); ++i) out[i] = buckets_[i].load(std::memory_order_relaxed);
  return out;
}

MetricsRegistry::Family& MetricsRegistry::FamilyFor(const std::string& name, const std::string& help,
                                                    const char* type) {
  Family& f = families_[name];
  if (f.type.empty()) {
    f.type = type;
    f.help = help;
  }
  return f;
}

Counter& MetricsRegistry::GetCounter(const std::string& name, const std::string& help, const Labels& labels) {
  std::lock_guard<std::mutex> lock(mu_);
  auto& slot = FamilyFor(name, help, "counter").counters[labels];
  if (!slot) slot = std::make_unique<Counter>();
  return *slot;
}

Gauge& MetricsRegistry::GetGauge(const std::string& name, const std::string& help, const Labels& labels) {
  std::lock_guard<std::mutex> lock(mu_);
  auto& slot = FamilyFor(name, help, "gauge").gauges[labels];
  if (!slot) slot = std::make_unique<Gauge>();
  return *slot;
}

Histogram& MetricsRegistry::GetHistogram(const std::string& name, const std::string& help,
                                         std::vector<double> bounds, const Labels& labels) {
  std::lock_guard<std::mutex> lock(mu_);
  auto& slot = FamilyFor(name, help, "histogram").histograms[labels];
  if (!slot) slot = std::make_unique<Histogram>(std::move(bounds));
  return *slot;
}

double MetricsRegistry::GaugeTotal(const std::string& name) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = families_.find(name);
  if (it == families_.end()) return 0;
  double total = 0;
  for (const auto& [labels, g] : it->second.gauges) total += g->value();
  return total;
}

int64_t MetricsRegistry::CounterTotal(const std::string& name, const Labels& match) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = families_.find(name);
  if (it == families_.end()) return 0;
  int64_t total = 0;
  for (const auto& [labels, c] : it->second.counters) {
    const Labels& have = labels;  // clang 14 cannot capture a structured binding
    bool ok = std::all_of(match.begin(), match.end(), [&](const auto& kv) {
      auto l = have.find(kv.first);
      return l != have.end() && l->second == kv.second;
    });
    if (ok) total += c->value();
  }
  return total;
}

std::map<std::string, int64_t> MetricsRegistry::CounterBy(const std::string& name, const std::string& by) const {
  std::lock_guard<std::mutex> lock(mu_);
  std::map<std::string, int64_t> out;
  auto it = families_.find(name);
  if (it == families_.end()) return out;
  for (const auto& [labels, c] : it->second.counters) {
    auto l = labels.find(by);
    if (l != labels.end()) out[l->second] += c->value();
  }
  return out;
}

namespace {
std::string Escape(const std::string& v) {
  std::string out;
  for (char c : v) {
    if (c == '\\' || c == '"') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out;
}

std::string LabelText(const Labels& labels, const std::string& extra_key = "", const std::string& extra_val = "") {
  if (labels.empty() && extra_key.empty()) return "";
  std::string out = "{";
  bool first = true;
  for (const auto& [k, v] : labels) {
    out += (first ? "" : ",") + k + "=\"" + Escape(v) + "\"";
    first = false;
  }
  if (!extra_key.empty()) out += (first ? "" : ",") + extra_key + "=\"" + extra_val + "\"";
  return out + "}";
}
}  // namespace

std::string MetricsRegistry::RenderPrometheus() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::ostringstream out;
  for (const auto& [name, f] : families_) {
    out << "# HELP " << name << " " << f.help << "\n# TYPE " << name << " " << f.type << "\n";
    for (const auto& [labels, c] : f.counters) out << name << LabelText(labels) << " " << c->value() << "\n";
    for (const auto& [labels, g] : f.gauges) out << name << LabelText(labels) << " " << g->value() << "\n";
    for (const auto& [labels, h] : f.histograms) {
      auto counts = h->bucket_counts();
      int64_t cumulative = 0;
      for (size_t i = 0; i < counts.size(); ++i) {
        cumulative += counts[i];
        std::ostringstream le;
        if (i < h->bounds().size()) le << h->bounds()[i];
        else le << "+Inf";
        out << name << "_bucket" << LabelText(labels, "le", le.str()) << " " << cumulative << "\n";
      }
      out << name << "_sum" << LabelText(labels) << " " << h->sum() << "\n";
      out << name << "_count" << LabelText(labels) << " " << h->count() << "\n";
    }
  }
  return out.str();
}

}  // namespace cityloop
