#include "app/console_backend.h"

#include <algorithm>
#include <deque>

#include "core/case_json.h"
#include "dispatch/case_history.h"
#include "dispatch/kpi.h"
#include "dispatch/unit_tracker.h"

namespace cityloop::app {

using nlohmann::json;

namespace {

json CityJson(const CityModel& city) {
  const CityOptions& c = city.config().city;
  json districts = json::array(), departments = json::array(), categories = json::array(), cells = json::array();
  for (const District& d : c.districts) districts.push_back({{"id", d.id}, {"name", d.name}, {"code", d.code}});
  for (const Department& d : c.departments) departments.push_back({{"id", d.id}, {"name", d.name}});
  for (const Category& k : c.catalogue) {
    categories.push_back({{"id", k.id},
                          {"name", k.name},
                          {"code", k.code},
                          {"department", k.department},
                          {"priority", PriorityName(k.priority)}});
  }
  const GridIndex& grid = city.grid();
  for (int i = 0; i < grid.cell_count(); ++i) {
    const CellInfo& cell = city.Cell(i);
    json corners = json::array();
    for (const LatLon& p : grid.Polygon(i)) corners.push_back({p.lat, p.lon});
    cells.push_back({{"index", i},
                     {"code", cell.code},
                     {"district", cell.district ? cell.district->id : ""},
                     {"street", cell.street ? cell.street->id : ""},
                     {"community", cell.community ? cell.community->id : ""},
                     {"row", grid.Row(i)},
                     {"col", grid.Col(i)},
                     {"corners", std::move(corners)}});
  }
  return json{{"name", c.name},
              {"utc_offset_minutes", c.utc_offset_minutes},
              {"districts", std::move(districts)},
              {"departments", std::move(departments)},
              {"categories", std::move(categories)},
              {"grid", {{"rows", grid.geometry().rows}, {"cols", grid.geometry().cols}, {"cells", std::move(cells)}}}};
}

Result<json> ParseStored(std::string_view what, std::string_view text) {
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded()) return Status::DataLoss("unreadable " + std::string(what) + " in the store");
  return j;
}

}  // namespace

ConsoleBackend::ConsoleBackend(std::shared_ptr<const CityModel> city, const Engine& engine, console::EventHub& hub)
    : city_(std::move(city)), engine_(engine), hub_(hub), city_json_(CityJson(*city_)) {}

ConsoleBackend::~ConsoleBackend() = default;

Result<std::unique_ptr<ConsoleBackend>> ConsoleBackend::Create(std::shared_ptr<const CityModel> city,
                                                              const Engine& engine, console::EventHub& hub,
                                                              const std::string& bootstrap,
                                                              std::function<bool()> ready) {
  std::unique_ptr<ConsoleBackend> b(new ConsoleBackend(city, engine, hub));
  b->ready_ = std::move(ready);
  ingest::ProducerOptions po;
  po.bootstrap = bootstrap;
  po.client_id = city->config().kafka.client_id + "-console";
  po.linger_ms = 0;  // an operator is waiting
  po.properties = city->config().kafka.ProducerProperties();
  ConsoleBackend* self = b.get();
  auto producer = ingest::KafkaProducer::Create(po, [self](uint64_t, const Status& st) {
    if (!st.ok()) self->delivery_ = st;
  });
  if (!producer.ok()) return producer.status();
  b->producer_ = std::move(producer).value();
  return b;
}

Status ConsoleBackend::ForEachCase(const std::string& after_id, const std::function<bool(const json&)>& fn) const {
  // Several shards: their cases merged in id order, read a chunk at a time.
  constexpr size_t kChunk = 64;
  struct Cursor {
    std::shared_ptr<const storage::Store> store;
    std::deque<std::pair<std::string, std::string>> cases;  // (id, json), ascending
    std::string after;
    bool done = false;
  };
  std::vector<Cursor> cursors;
  for (auto& store : engine_.stores()) cursors.push_back({std::move(store), {}, after_id, false});
  auto refill = [&](Cursor& c) -> Status {
    if (!c.cases.empty() || c.done) return Status::Ok();
    CL_RETURN_IF_ERROR(c.store->ForEachCaseAfter(c.after, [&](std::string_view id, std::string_view text) {
      c.cases.emplace_back(std::string(id), std::string(text));
      return c.cases.size() < kChunk;
    }));
    if (c.cases.size() < kChunk) c.done = true;
    if (!c.cases.empty()) c.after = c.cases.back().first;
    return Status::Ok();
  };
  for (;;) {
    Cursor* next = nullptr;
    for (Cursor& c : cursors) {
      CL_RETURN_IF_ERROR(refill(c));
      if (!c.cases.empty() && (!next || c.cases.front().first < next->cases.front().first)) next = &c;
    }
    if (!next) return Status::Ok();
    const auto [id, text] = std::move(next->cases.front());
    next->cases.pop_front();
    auto c = ParseCaseJson(text);
    if (!c.ok()) return Status::DataLoss("case " + id + ": " + c.status().message());
    if (!fn(CaseToJson(*c, /*with_signals=*/false))) return Status::Ok();
  }
}

Result<std::shared_ptr<const storage::Store>> ConsoleBackend::StoreOfCase(const std::string& id,
                                                                          std::string* text) const {
  for (auto& store : engine_.stores()) {
    auto found = store->GetCase(id);
    if (!found.ok()) return found.status();
    if (!*found) continue;
    if (text) *text = std::move(**found);
    return store;
  }
  return std::shared_ptr<const storage::Store>();
}

Result<std::optional<json>> ConsoleBackend::GetCase(const std::string& id) const {
  std::string text;
  auto store = StoreOfCase(id, &text);
  if (!store.ok()) return store.status();
  if (!*store) return std::optional<json>();
  auto c = ParseCaseJson(text);
  if (!c.ok()) return Status::DataLoss("case " + id + ": " + c.status().message());
  return std::optional<json>(CaseToJson(*c, /*with_signals=*/true));
}

Result<std::vector<json>> ConsoleBackend::Timeline(const std::string& id) const {
  std::vector<std::string> entries;
  auto store = StoreOfCase(id);
  if (!store.ok()) return store.status();
  if (*store) {
    CL_RETURN_IF_ERROR((*store)->ForEachAudit(id, [&](uint32_t, std::string_view e) {
      entries.emplace_back(e);
      return true;
    }));
  }
  auto timeline = dispatch::Timeline(entries);
  if (!timeline.ok()) return timeline.status();
  return timeline->get<std::vector<json>>();
}

Result<std::optional<std::string>> ConsoleBackend::Snapshot(const std::string& id) const {
  for (const auto& store : engine_.stores()) {
    auto jpeg = store->GetSnapshot(id);
    if (!jpeg.ok() || *jpeg) return jpeg;
  }
  return std::optional<std::string>();
}

Result<json> ConsoleBackend::Kpi(const std::string& group_by, int64_t from_day, int64_t to_day) const {
  auto group = dispatch::ParseKpiGroup(group_by);
  if (!group) return Status::InvalidArgument("group_by: unknown grouping '" + group_by + "'");
  auto book = engine_.kpi();
  if (!book) return Status::Unavailable("KPIs are not computed yet");
  return book->QueryJson(*group, from_day, to_day);
}

Result<json> ConsoleBackend::Units() const {
  json out = json::array();
  const auto stores = engine_.stores();
  if (stores.empty()) return out;
  Status bad;
  // Every shard tracks the whole fleet: one store tells.
  CL_RETURN_IF_ERROR(stores.front()->ForEachState(dispatch::UnitTracker::kStatePrefix,
                                                  [&](std::string_view, std::string_view value) {
                                                    auto j = ParseStored("unit", value);
                                                    if (!j.ok()) {
                                                      bad = j.status();
                                                      return false;
                                                    }
                                                    out.push_back(std::move(j).value());
                                                    return true;
                                                  }));
  CL_RETURN_IF_ERROR(bad);
  return out;
}

json ConsoleBackend::City() const { return city_json_; }

std::string ConsoleBackend::DistrictOfCell(const std::string& cell_code) const {
  const CellInfo* cell = city_->CellByCode(cell_code);
  return cell && cell->district ? cell->district->id : "";
}

Status ConsoleBackend::EventsAfter(uint64_t after, size_t max, std::vector<console::StreamEvent>* out) const {
  // Shards number their events apart (ShardSequence): merged by seq.
  const size_t start = out->size();
  for (const auto& store : engine_.stores()) {
    size_t taken = 0;
    CL_RETURN_IF_ERROR(store->ForEachEventAfter(after, [&](uint64_t seq, std::string_view topic, std::string_view j) {
      out->push_back({seq, std::string(topic), std::string(j)});
      return ++taken < max;
    }));
  }
  std::sort(out->begin() + static_cast<std::ptrdiff_t>(start), out->end(),
            [](const console::StreamEvent& a, const console::StreamEvent& b) { return a.seq < b.seq; });
  if (out->size() - start > max) out->resize(start + max);
  return Status::Ok();
}

uint64_t ConsoleBackend::first_seq() const {
  uint64_t first = 0;
  for (const auto& store : engine_.stores()) {
    const uint64_t f = store->FirstEventSeq();
    if (f != 0 && (first == 0 || f < first)) first = f;
  }
  return first;
}

Status ConsoleBackend::SubmitCommand(const json& command) {
  const std::string case_id = command.value("case_id", "");
  std::lock_guard<std::mutex> lock(produce_mu_);
  delivery_ = Status::Ok();
  CL_RETURN_IF_ERROR(producer_->Produce(city_->config().kafka.topics.commands, case_id, command.dump()));
  CL_RETURN_IF_ERROR(producer_->Flush(5000));
  return delivery_;
}

}  // namespace cityloop::app
