#include "dispatch/kpi.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <limits>

#include "core/name_table.h"
#include "core/time_util.h"

namespace cityloop::dispatch {
namespace {

constexpr int64_t kDayMs = 86400000;
constexpr int64_t kHistogramSpanMs = 60 * kDayMs;

// Bin edges: 1 s, then each edge plus a tenth of it (integer ms), up to the
// first edge >= 60 days. Integers so every platform bins alike.
constexpr size_t EdgeCount() {
  size_t n = 1;
  for (int64_t e = DurationStats::kFirstEdgeMs; e < kHistogramSpanMs; e += e / 10) ++n;
  return n;
}
constexpr std::array<int64_t, EdgeCount()> MakeEdges() {
  std::array<int64_t, EdgeCount()> edges{};
  int64_t e = DurationStats::kFirstEdgeMs;
  for (int64_t& edge : edges) {
    edge = e;
    e += e / 10;
  }
  return edges;
}
constexpr auto kEdges = MakeEdges();
// Bin 0 is [0, kEdges[0]), bin i is [kEdges[i-1], kEdges[i]), the last is open.
static_assert(kEdges.size() + 1 <= 256, "bin indexes are uint8_t");

// kKpiRates must name the rates in the order of config.h's kKpiRateNames.
constexpr bool RatesMatchNames(const std::array<KpiRateFormula, kKpiRateNames.size()>& rates) {
  for (size_t i = 0; i < rates.size(); ++i) {
    if (rates[i].name != std::string_view(kKpiRateNames[i])) return false;
  }
  return true;
}

constexpr int64_t KpiCounts::*CountMember(std::string_view name) {
  for (const KpiCountField& f : kKpiCountFields) {
    if (f.name == name) return f.member;
  }
  return nullptr;
}

constexpr KpiRateFormula Rate(std::string_view name, std::string_view num, std::string_view den) {
  return {name, num, den, CountMember(num), CountMember(den)};
}

constexpr std::array<KpiRateFormula, kKpiRateNames.size()> kRates = {{
    Rate("registration_rate", "registered", "accepted"),
    Rate("dispatch_rate", "dispatched", "registered"),
    Rate("close_rate", "closed", "due_to_close"),
    Rate("on_time_close_rate", "closed_on_time", "due_to_close"),
    Rate("rework_rate", "reworked", "due_to_close"),
    Rate("extension_rate", "extended", "due_to_close"),
    Rate("on_time_ack_rate", "acknowledged_on_time", "dispatches"),
    Rate("accurate_dispatch_rate", "not_returned", "dispatches"),
    Rate("reopen_rate", "reopened", "closed"),
}};
static_assert(RatesMatchNames(kRates));

constexpr std::array<std::pair<KpiGroup, const char*>, 8> kGroupNames = {{
    {KpiGroup::kDepartment, "department"},
    {KpiGroup::kDistrict, "district"},
    {KpiGroup::kCell, "cell"},
    {KpiGroup::kCategory, "category"},
    {KpiGroup::kDay, "day"},
    {KpiGroup::kTotal, "total"},
    {KpiGroup::kDepartment, "dept"},  // aliases after the canonical names
    {KpiGroup::kCell, "grid"},
}};

int64_t FloorDiv(int64_t a, int64_t b) { return a / b - ((a % b != 0) && ((a < 0) != (b < 0))); }

size_t Mix(size_t h, size_t v) { return h ^ (v + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2)); }

// "YYYY-MM-DD" of a local day number.
std::string DayName(int64_t day) {
  const std::string d = FormatLocalDate(day * kDayMs, 0);
  return d.substr(0, d.size() - 4) + "-" + d.substr(d.size() - 4, 2) + "-" + d.substr(d.size() - 2);
}

void RecordSpan(DurationStats& stats, int64_t from_ms, int64_t to_ms) {
  if (from_ms != 0 && to_ms != 0 && to_ms >= from_ms) stats.Record(to_ms - from_ms);
}

bool OnTime(int64_t done_ms, const SlaClock& clock) {
  return done_ms != 0 && (clock.deadline_ms == 0 || done_ms <= clock.deadline_ms);
}

// Persisted names: '%' and '/' escaped so a key splits back into its parts.
void AppendEscaped(std::string* out, std::string_view name) {
  for (char ch : name) {
    if (ch == '%') out->append("%25");
    else if (ch == '/') out->append("%2F");
    else out->push_back(ch);
  }
}

std::optional<std::string> Unescape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      out.push_back(s[i]);
      continue;
    }
    unsigned v = 0;
    if (i + 3 > s.size()) return std::nullopt;
    auto [end, ec] = std::from_chars(s.data() + i + 1, s.data() + i + 3, v, 16);
    if (ec != std::errc() || end != s.data() + i + 3) return std::nullopt;
    out.push_back(static_cast<char>(v));
    i += 2;
  }
  return out;
}

// A stored integer that must fit its field.
template <typename T>
std::optional<T> Stored(const nlohmann::json& v) {
  if (!v.is_number_integer()) return std::nullopt;
  const int64_t x = v.get<int64_t>();
  if (x < std::numeric_limits<T>::min() || x > std::numeric_limits<T>::max()) return std::nullopt;
  return static_cast<T>(x);
}

// Adds delta.count to the bin with delta's key in a sorted sparse histogram.
template <typename B>
void Bump(std::vector<B>* bins, const B& delta) {
  auto it = std::lower_bound(bins->begin(), bins->end(), delta,
                             [](const B& x, const B& y) { return x.key() < y.key(); });
  if (it == bins->end() || it->key() != delta.key()) {
    if (delta.count != 0) bins->insert(it, delta);
  } else if ((it->count += delta.count) == 0) {
    bins->erase(it);
  }
}

nlohmann::json Optional(const auto& v) { return v ? nlohmann::json(*v) : nlohmann::json(nullptr); }

nlohmann::json RowJson(const KpiRow& row, const KpiOptions& options) {
  nlohmann::json counts = nlohmann::json::object(), rates = nlohmann::json::object(),
                 times = nlohmann::json::object();
  for (const KpiCountField& f : kKpiCountFields) counts[std::string(f.name)] = row.counts.*f.member;
  for (const KpiRateFormula& r : kRates) rates[std::string(r.name)] = Optional(KpiRate(row.counts, r));
  for (const KpiTimeField& f : kKpiTimeFields) {
    const DurationStats& d = row.counts.*f.member;
    times[std::string(f.name)] = {{"count", d.count}, {"mean_ms", Optional(d.MeanMs())}, {"p90_ms", Optional(d.P90Ms())}};
  }
  return {{"group", row.group},
          {"counts", std::move(counts)},
          {"rates", std::move(rates)},
          {"times", std::move(times)},
          {"score", Optional(KpiScore(row.counts, options))}};
}

}  // namespace

const int DurationStats::kBinCount = static_cast<int>(kEdges.size()) + 1;
const int64_t DurationStats::kTopEdgeMs = kEdges.back();
const std::array<KpiRateFormula, kKpiRateNames.size()> kKpiRates = kRates;

// ---- DurationStats

int DurationStats::BinOf(int64_t ms) {
  return static_cast<int>(std::upper_bound(kEdges.begin(), kEdges.end(), ms) - kEdges.begin());
}

int64_t DurationStats::UpperEdgeMs(int bin) {
  return kEdges[std::min(static_cast<size_t>(std::max(bin, 0)), kEdges.size() - 1)];
}

void DurationStats::Record(int64_t ms) {
  ++count;
  sum_ms += ms;
  Bump(&bins, Bin{static_cast<uint8_t>(BinOf(ms)), 1});
}

void DurationStats::Add(const DurationStats& other, int sign) {
  count += sign * other.count;
  sum_ms += sign * other.sum_ms;
  for (const Bin& b : other.bins) Bump(&bins, Bin{b.index, sign * b.count});
}

std::optional<double> DurationStats::MeanMs() const {
  if (count <= 0) return std::nullopt;
  return static_cast<double>(sum_ms) / static_cast<double>(count);
}

std::optional<int64_t> DurationStats::PercentileMs(int percent) const {
  int64_t total = 0;
  for (const Bin& b : bins) total += b.count;
  if (total <= 0) return std::nullopt;
  const int64_t rank = std::max<int64_t>(1, (total * percent + 99) / 100);
  int64_t seen = 0;
  for (const Bin& b : bins) {
    seen += b.count;
    if (seen >= rank) return UpperEdgeMs(b.index);
  }
  return UpperEdgeMs(bins.back().index);
}

// ---- KpiCounts

void KpiCounts::Add(const KpiCounts& other, int sign) {
  for (const KpiCountField& f : kKpiCountFields) this->*f.member += sign * (other.*f.member);
  for (const KpiTimeField& f : kKpiTimeFields) (this->*f.member).Add(other.*f.member, sign);
}

bool KpiCounts::IsZero() const {
  for (const KpiCountField& f : kKpiCountFields) {
    if (this->*f.member != 0) return false;
  }
  for (const KpiTimeField& f : kKpiTimeFields) {
    if (!(this->*f.member).empty()) return false;
  }
  return true;
}

std::optional<double> KpiRate(const KpiCounts& c, const KpiRateFormula& rate) {
  if (c.*rate.den == 0) return std::nullopt;
  return static_cast<double>(c.*rate.num) / static_cast<double>(c.*rate.den);
}

std::optional<double> KpiScore(const KpiCounts& c, const KpiOptions& options) {
  double sum = 0, weights = 0;
  for (const auto& [name, w] : options.weights) {
    if (w == 0) continue;
    const std::string& rate_name = name;  // clang 14 cannot capture a structured binding
    auto formula = std::find_if(kRates.begin(), kRates.end(), [&](const KpiRateFormula& r) { return r.name == rate_name; });
    if (formula == kRates.end()) continue;
    const std::optional<double> rate = KpiRate(c, *formula);
    if (!rate) continue;
    sum += w > 0 ? w * *rate : -w * (1 - *rate);
    weights += std::abs(w);
  }
  if (weights == 0) return std::nullopt;
  return 100 * sum / weights;
}

// ---- Keys and contributions

size_t KpiKeyHash::operator()(const KpiKey& k) const {
  const std::hash<std::string> h;
  size_t v = std::hash<int32_t>{}(k.day);
  for (const std::string* s : {&k.department, &k.district, &k.cell, &k.category}) v = Mix(v, h(*s));
  return v;
}

int32_t LocalDay(int64_t ms, int utc_offset_minutes) {
  return static_cast<int32_t>(FloorDiv(ms + int64_t{utc_offset_minutes} * 60000, kDayMs));
}

KpiContribution Contribute(const Case& c, int utc_offset_minutes) {
  KpiContribution out;
  if (c.status == CaseStatus::kMerged) return out;
  const int32_t day = LocalDay(c.registered_ms != 0 ? c.registered_ms : c.first_event_ms, utc_offset_minutes);
  // The part of a department; the lead's is made first. A reference is good
  // until the next call.
  auto part = [&](const std::string& department) -> KpiCounts& {
    for (auto& [key, counts] : out.parts) {
      if (key.department == department) return counts;
    }
    out.parts.push_back({KpiKey{day, department, c.district, c.cell_code, c.category}, KpiCounts{}});
    return out.parts.back().second;
  };

  KpiCounts& k = part(c.department);
  const bool dispatched = c.dispatched_ms != 0, closed = c.status == CaseStatus::kClosed;
  k.accepted = 1;
  k.registered = c.registered_ms != 0;
  k.dispatched = dispatched;
  k.due_to_close = dispatched && !c.deferred && c.status != CaseStatus::kInvalid;
  k.closed = closed;
  k.closed_on_time = closed && OnTime(c.closed_ms, c.close);
  k.reworked = c.reworks > 0;
  k.extended = c.extensions > 0;
  k.reopened = c.reopens > 0;
  k.deferred = c.deferred;
  if (closed) RecordSpan(k.close, c.registered_ms, c.closed_ms);

  for (const Task& t : c.tasks) {
    KpiCounts& p = part(t.department);
    p.dispatches += 1;
    p.acknowledged_on_time += OnTime(t.acknowledged_ms, t.acknowledge);
    p.not_returned += t.status != TaskStatus::kReturned;
    RecordSpan(p.ack, t.dispatched_ms, t.acknowledged_ms);
    RecordSpan(p.arrive, t.dispatched_ms, t.arrived_ms);
    RecordSpan(p.handle, t.dispatched_ms, t.handled_ms);
  }
  std::sort(out.parts.begin(), out.parts.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  return out;
}

std::optional<KpiGroup> ParseKpiGroup(std::string_view s) { return ParseIn(kGroupNames, s); }
const char* KpiGroupName(KpiGroup g) { return NameIn(kGroupNames, g); }

// ---- KpiBook

size_t KpiBook::SlotHash::operator()(const Slot& s) const {
  size_t v = s.department;
  for (uint32_t id : {s.district, s.cell, s.category}) v = Mix(v, id);
  return v;
}

size_t KpiBook::DirtyHash::operator()(const std::pair<int32_t, Slot>& d) const {
  return Mix(SlotHash{}(d.second), static_cast<size_t>(d.first));
}

KpiBook::KpiBook(KpiOptions options) : options_(std::move(options)) {}

uint32_t KpiBook::Intern(std::string_view name) {
  if (auto it = ids_.find(name); it != ids_.end()) return it->second;
  const auto id = static_cast<uint32_t>(names_.size());
  names_.emplace_back(name);
  ids_.emplace(names_.back(), id);
  return id;
}

KpiBook::Slot KpiBook::SlotOf(const KpiKey& key) {
  return {Intern(key.department), Intern(key.district), Intern(key.cell), Intern(key.category)};
}

void KpiBook::Bucket::Add(const KpiCounts& c, int sign) {
  for (size_t i = 0; i < kKpiCountFields.size(); ++i) {
    counts[i] += static_cast<int32_t>(sign * (c.*kKpiCountFields[i].member));
  }
  for (size_t t = 0; t < kKpiTimeFields.size(); ++t) {
    const DurationStats& d = c.*kKpiTimeFields[t].member;
    time_count[t] += static_cast<int32_t>(sign * d.count);
    time_sum_ms[t] += sign * d.sum_ms;
    for (const DurationStats::Bin& b : d.bins) Bump(&bins, TimeBin{static_cast<uint8_t>(t), b.index, sign * b.count});
  }
}

void KpiBook::Bucket::AddTo(KpiCounts* c) const {
  for (size_t i = 0; i < kKpiCountFields.size(); ++i) c->*kKpiCountFields[i].member += counts[i];
  for (size_t t = 0; t < kKpiTimeFields.size(); ++t) {
    DurationStats& d = c->*kKpiTimeFields[t].member;
    d.count += time_count[t];
    d.sum_ms += time_sum_ms[t];
  }
  for (const TimeBin& b : bins) Bump(&(c->*kKpiTimeFields[b.time].member).bins, DurationStats::Bin{b.index, b.count});
}

bool KpiBook::Bucket::IsZero() const {
  auto zero = [](const auto& a) { return std::all_of(a.begin(), a.end(), [](auto v) { return v == 0; }); };
  return zero(counts) && zero(time_count) && zero(time_sum_ms) && bins.empty();
}

// {"accepted":1,...,"acknowledge":[count,sum,bin,count,...],...}: the
// non-zero fields in table order.
std::string KpiBook::Bucket::Encode() const {
  std::string out = "{";
  auto field = [&](std::string_view name) {
    if (out.size() > 1) out.push_back(',');
    out.append("\"").append(name).append("\":");
  };
  for (size_t i = 0; i < kKpiCountFields.size(); ++i) {
    if (counts[i] == 0) continue;
    field(kKpiCountFields[i].name);
    out += std::to_string(counts[i]);
  }
  for (size_t t = 0; t < kKpiTimeFields.size(); ++t) {
    auto first = std::find_if(bins.begin(), bins.end(), [&](const TimeBin& b) { return b.time == t; });
    if (time_count[t] == 0 && time_sum_ms[t] == 0 && first == bins.end()) continue;
    field(kKpiTimeFields[t].name);
    out += "[" + std::to_string(time_count[t]) + "," + std::to_string(time_sum_ms[t]);
    for (auto b = first; b != bins.end() && b->time == t; ++b) {
      out += "," + std::to_string(b->index) + "," + std::to_string(b->count);
    }
    out.push_back(']');
  }
  out.push_back('}');
  return out;
}

Status KpiBook::Bucket::Decode(std::string_view value) {
  const nlohmann::json j = nlohmann::json::parse(value, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return Status::DataLoss("not a JSON object");
  for (const auto& [name, v] : j.items()) {
    const std::string& field = name;  // clang 14 cannot capture a structured binding
    auto count = std::find_if(kKpiCountFields.begin(), kKpiCountFields.end(),
                              [&](const KpiCountField& f) { return f.name == field; });
    if (count != kKpiCountFields.end()) {
      auto n = Stored<int32_t>(v);
      if (!n) return Status::DataLoss(name + ": not a 32-bit integer");
      counts[static_cast<size_t>(count - kKpiCountFields.begin())] = *n;
      continue;
    }
    auto time = std::find_if(kKpiTimeFields.begin(), kKpiTimeFields.end(),
                             [&](const KpiTimeField& f) { return f.name == field; });
    if (time == kKpiTimeFields.end()) return Status::DataLoss("unknown field " + name);
    const auto t = static_cast<size_t>(time - kKpiTimeFields.begin());
    if (!v.is_array() || v.size() < 2 || v.size() % 2 != 0) return Status::DataLoss(name + ": want [count, sum, bins...]");
    auto n = Stored<int32_t>(v[0]);
    auto sum = Stored<int64_t>(v[1]);
    if (!n || !sum) return Status::DataLoss(name + ": bad count or sum");
    time_count[t] = *n;
    time_sum_ms[t] = *sum;
    const size_t from = bins.size();
    for (size_t i = 2; i < v.size(); i += 2) {
      auto index = Stored<uint8_t>(v[i]);
      auto c = Stored<int32_t>(v[i + 1]);
      if (!index || *index >= DurationStats::kBinCount || !c || *c == 0 ||
          (bins.size() > from && *index <= bins.back().index)) {
        return Status::DataLoss(name + ": bad bin " + v[i].dump());
      }
      bins.push_back({static_cast<uint8_t>(t), *index, *c});
    }
  }
  // JSON objects come back in name order; the bins are kept in time order.
  std::sort(bins.begin(), bins.end(), [](const TimeBin& x, const TimeBin& y) { return x.key() < y.key(); });
  if (IsZero()) return Status::DataLoss("an all-zero bucket");
  return Status::Ok();
}

void KpiBook::Apply(const KpiKey& key, const KpiCounts& counts, int sign) {
  const Slot slot = SlotOf(key);
  auto day = days_.try_emplace(key.day).first;
  Day& d = day->second;
  auto [at, inserted] = d.index.try_emplace(slot, static_cast<uint32_t>(d.slots.size()));
  if (inserted) {
    d.slots.push_back(slot);
    d.buckets.emplace_back();
    ++bucket_count_;
  }
  const uint32_t i = at->second;
  d.buckets[i].Add(counts, sign);
  if (d.buckets[i].IsZero()) {
    // Swap-remove: the last bucket takes the freed position.
    if (i + 1 != d.slots.size()) {
      d.slots[i] = d.slots.back();
      d.buckets[i] = std::move(d.buckets.back());
      d.index[d.slots[i]] = i;
    }
    d.slots.pop_back();
    d.buckets.pop_back();
    d.index.erase(slot);
    --bucket_count_;
    if (d.slots.empty()) days_.erase(day);
  }
  if (track_dirty_) dirty_.insert({key.day, slot});
}

void KpiBook::Replace(const KpiContribution& before, const KpiContribution& after) {
  if (before == after) return;  // most changes (lights, positions) leave the KPIs alone
  // Adding first keeps a bucket both share from emptying and being rebuilt.
  for (const auto& [key, counts] : after.parts) Apply(key, counts, +1);
  for (const auto& [key, counts] : before.parts) Apply(key, counts, -1);
}

void KpiBook::MergeFrom(const KpiBook& other) {
  for (const auto& [day, d] : other.days_) {
    for (size_t i = 0; i < d.slots.size(); ++i) {
      const Slot& slot = d.slots[i];
      const KpiKey key{day, other.names_[slot.department], other.names_[slot.district], other.names_[slot.cell],
                       other.names_[slot.category]};
      KpiCounts counts;
      d.buckets[i].AddTo(&counts);
      Apply(key, counts, +1);
    }
  }
}

uint32_t KpiBook::Slot::*KpiBook::GroupField(KpiGroup group) {
  switch (group) {
    case KpiGroup::kDepartment: return &Slot::department;
    case KpiGroup::kDistrict: return &Slot::district;
    case KpiGroup::kCell: return &Slot::cell;
    case KpiGroup::kCategory: return &Slot::category;
    case KpiGroup::kDay:
    case KpiGroup::kTotal: break;
  }
  return nullptr;
}

std::vector<KpiRow> KpiBook::Query(KpiGroup group, int64_t from_day, int64_t to_day) const {
  std::vector<KpiRow> rows;
  constexpr int64_t kMin = std::numeric_limits<int32_t>::min(), kMax = std::numeric_limits<int32_t>::max();
  from_day = std::clamp(from_day, kMin, kMax);
  to_day = std::clamp(to_day, kMin, kMax);
  if (from_day > to_day) return rows;
  // Grouped by a name: rows found by name id; by day or in total: one row a day, or one.
  uint32_t Slot::*const field = GroupField(group);
  constexpr size_t kNoRow = std::numeric_limits<size_t>::max();
  std::vector<size_t> row_of(field ? names_.size() : 0, kNoRow);
  const auto end = days_.upper_bound(static_cast<int32_t>(to_day));
  for (auto day = days_.lower_bound(static_cast<int32_t>(from_day)); day != end; ++day) {
    const Day& d = day->second;
    if (group == KpiGroup::kDay || (group == KpiGroup::kTotal && rows.empty())) {
      rows.push_back({group == KpiGroup::kDay ? DayName(day->first) : "total", KpiCounts{}});
    }
    for (size_t i = 0; i < d.slots.size(); ++i) {
      // The bins live apart from the bucket: fetch a few buckets ahead.
      constexpr size_t kAhead = 8;
      if (i + kAhead < d.buckets.size()) __builtin_prefetch(d.buckets[i + kAhead].bins.data());
      size_t row = rows.size() - 1;
      if (field) {
        const uint32_t id = d.slots[i].*field;
        if (row_of[id] == kNoRow) {
          row_of[id] = rows.size();
          rows.push_back({names_[id], KpiCounts{}});
        }
        row = row_of[id];
      }
      d.buckets[i].AddTo(&rows[row].counts);
    }
  }
  std::sort(rows.begin(), rows.end(), [](const KpiRow& a, const KpiRow& b) { return a.group < b.group; });
  return rows;
}

nlohmann::json KpiBook::QueryJson(KpiGroup group, int64_t from_day, int64_t to_day) const {
  nlohmann::json rows = nlohmann::json::array();
  for (const KpiRow& row : Query(group, from_day, to_day)) rows.push_back(RowJson(row, options_));
  nlohmann::json formulas = nlohmann::json::object();
  for (const KpiRateFormula& r : kRates) {
    formulas[std::string(r.name)] = {{"numerator", r.numerator}, {"denominator", r.denominator}};
  }
  nlohmann::json weights = nlohmann::json::object();
  for (const auto& [name, w] : options_.weights) weights[name] = w;
  const nlohmann::json definitions = {
      {"cohort", "a case counts on the local date of registered_ms, else of first_event_ms; merged cases not at all"},
      {"rate", "numerator / denominator over the row's counts; null when the denominator is 0"},
      {"score", "100 * (sum_{w>0} w*rate + sum_{w<0} |w|*(1-rate)) / sum |w| over the weighted rates present"},
      {"p90_ms", "upper edge of the ~10 % wide log bin (from 1 s) holding the nearest-rank 90th percentile"},
  };
  return {{"group_by", KpiGroupName(group)},
          {"from_day", from_day},
          {"to_day", to_day},
          {"from", DayName(from_day)},
          {"to", DayName(to_day)},
          {"rows", std::move(rows)},
          {"formulas", std::move(formulas)},
          {"definitions", definitions},
          {"weights", std::move(weights)}};
}

bool KpiBook::operator==(const KpiBook& other) const {
  if (bucket_count_ != other.bucket_count_ || days_.size() != other.days_.size()) return false;
  auto other_id = [&](uint32_t id) -> std::optional<uint32_t> {
    auto it = other.ids_.find(names_[id]);
    if (it == other.ids_.end()) return std::nullopt;
    return it->second;
  };
  for (const auto& [day, mine] : days_) {
    auto theirs = other.days_.find(day);
    if (theirs == other.days_.end() || theirs->second.slots.size() != mine.slots.size()) return false;
    for (size_t i = 0; i < mine.slots.size(); ++i) {
      const Slot& s = mine.slots[i];
      const auto dept = other_id(s.department), district = other_id(s.district), cell = other_id(s.cell),
                 category = other_id(s.category);
      if (!dept || !district || !cell || !category) return false;
      auto it = theirs->second.index.find(Slot{*dept, *district, *cell, *category});
      if (it == theirs->second.index.end() || !(theirs->second.buckets[it->second] == mine.buckets[i])) return false;
    }
  }
  return true;
}

std::string KpiBook::StateKey(int32_t day, const Slot& slot) const {
  std::string key(kStatePrefix);
  key += std::to_string(day);
  for (uint32_t id : {slot.department, slot.district, slot.cell, slot.category}) {
    key.push_back('/');
    AppendEscaped(&key, names_[id]);
  }
  return key;
}

void KpiBook::TakeDirty(std::vector<std::pair<std::string, std::string>>* out) {
  std::vector<std::pair<std::string, std::string>> entries;
  entries.reserve(dirty_.size());
  for (const auto& [day, slot] : dirty_) {
    std::string value;
    if (auto d = days_.find(day); d != days_.end()) {
      if (auto at = d->second.index.find(slot); at != d->second.index.end()) value = d->second.buckets[at->second].Encode();
    }
    entries.emplace_back(StateKey(day, slot), std::move(value));
  }
  dirty_.clear();
  std::sort(entries.begin(), entries.end());
  out->insert(out->end(), std::make_move_iterator(entries.begin()), std::make_move_iterator(entries.end()));
}

Status KpiBook::Restore(std::string_view key, std::string_view value) {
  const auto bad = [&](const std::string& why) { return Status::DataLoss("kpi state " + std::string(key) + ": " + why); };
  if (!key.starts_with(kStatePrefix)) return bad("not a kpi key");
  std::string_view rest = key.substr(kStatePrefix.size());
  std::vector<std::string_view> parts;
  for (size_t slash; (slash = rest.find('/')) != std::string_view::npos; rest.remove_prefix(slash + 1)) {
    parts.push_back(rest.substr(0, slash));
  }
  parts.push_back(rest);
  if (parts.size() != 5) return bad("want kpi/<day>/<dept>/<district>/<cell>/<category>");
  KpiKey k;
  if (auto [end, ec] = std::from_chars(parts[0].data(), parts[0].data() + parts[0].size(), k.day);
      ec != std::errc() || end != parts[0].data() + parts[0].size()) {
    return bad("bad day");
  }
  std::string* names[] = {&k.department, &k.district, &k.cell, &k.category};
  for (size_t i = 0; i < 4; ++i) {
    auto name = Unescape(parts[i + 1]);
    if (!name) return bad("bad escape");
    *names[i] = std::move(*name);
  }
  Bucket bucket;
  if (Status st = bucket.Decode(value); !st.ok()) return bad(st.message());
  const Slot slot = SlotOf(k);
  Day& d = days_[k.day];
  auto [at, inserted] = d.index.try_emplace(slot, static_cast<uint32_t>(d.slots.size()));
  if (inserted) {
    d.slots.push_back(slot);
    d.buckets.push_back(std::move(bucket));
    ++bucket_count_;
  } else {
    d.buckets[at->second] = std::move(bucket);
  }
  return Status::Ok();
}

}  // namespace cityloop::dispatch
