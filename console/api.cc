// The REST API and live stream over a Backend (console/api.h). Handlers
// validate every parameter (unknown ones are refused, ids have a length cap
// and a character set), authenticate, scope by district, and answer JSON;
// an ApiError thrown anywhere inside a handler becomes its error response.
#include "console/api.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <climits>
#include <cstring>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include <openssl/rand.h>
#include <spdlog/spdlog.h>

#include "console/auth.h"
#include "console/http_server.h"
#include "console/live_stream.h"
#include "console/web_files.h"
#include "core/model.h"
#include "core/time_util.h"

namespace cityloop::console {

using nlohmann::json;

namespace {

constexpr size_t kMaxParamChars = 256;
constexpr size_t kMaxIdChars = 128;
constexpr size_t kMaxNoteBytes = 4000;
constexpr int kDefaultLimit = 50;
constexpr int kMaxLimit = 500;
constexpr size_t kScanBudget = 20000;      // cases looked at per list request
constexpr int64_t kKpiDefaultDays = 30;
constexpr int64_t kKpiMaxDays = 731;
constexpr int64_t kMaxDurationMs = 365LL * 86400000;
constexpr int kStreamSendBuffer = 64 * 1024;
const char* const kCursorPrefix = "c1:";

// ---- errors ---------------------------------------------------------------------

struct ApiError {
  int status;
  std::string code;
  std::string message;
  std::string parameter;  // the bad parameter, for 400s
  std::vector<std::pair<std::string, std::string>> headers;
};

[[noreturn]] void BadParam(const std::string& param, const std::string& why) {
  throw ApiError{400, "bad_parameter", param + ": " + why, param, {}};
}
[[noreturn]] void Fail(int status, const std::string& code, const std::string& message) {
  throw ApiError{status, code, message, "", {}};
}

std::string Dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

HttpResponse JsonResponse(int status, const json& j) {
  HttpResponse r;
  r.status = status;
  r.body = Dump(j);
  return r;
}

HttpResponse ErrorResponse(const ApiError& e) {
  json err{{"code", e.code}, {"message", e.message}};
  if (!e.parameter.empty()) err["parameter"] = e.parameter;
  HttpResponse r = JsonResponse(e.status, json{{"error", std::move(err)}});
  r.headers = e.headers;
  return r;
}

[[noreturn]] void Internal(const Status& st, const std::string& what) {
  spdlog::error("api: {}: {}", what, st.ToString());
  Fail(500, "internal", what + ": " + st.message());
}

// ---- parameters -----------------------------------------------------------------

bool IsIdChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-' ||
         c == '.' || c == ':';
}

void CheckId(const std::string& param, const std::string& v) {
  if (v.empty()) BadParam(param, "must not be empty");
  if (v.size() > kMaxIdChars) BadParam(param, "longer than " + std::to_string(kMaxIdChars) + " characters");
  if (!std::all_of(v.begin(), v.end(), IsIdChar)) {
    BadParam(param, "may hold only letters, digits and _ - . :");
  }
}

// Refuses query parameters the endpoint does not know (typos would
// otherwise silently widen a filter) and values over the length cap.
void CheckParams(const HttpRequest& req, std::initializer_list<const char*> allowed) {
  for (const auto& [k, v] : req.query) {
    if (k == "access_token") {
      BadParam(k, "tokens are accepted only in the Authorization header (Bearer)");
    }
    const std::string& key = k;  // clang 14 cannot capture a structured binding
    if (std::none_of(allowed.begin(), allowed.end(), [&](const char* a) { return key == a; })) {
      std::string list;
      for (const char* a : allowed) list += std::string(list.empty() ? "" : ", ") + a;
      BadParam(k.size() > 64 ? k.substr(0, 64) : k,
               "unknown parameter" + (list.empty() ? std::string(" (this endpoint takes none)") : " (known: " + list + ")"));
    }
    if (v.size() > kMaxParamChars) BadParam(k, "longer than " + std::to_string(kMaxParamChars) + " characters");
  }
}

// An optional id-like query parameter ("" when absent).
std::string IdParam(const HttpRequest& req, const char* name) {
  auto it = req.query.find(name);
  if (it == req.query.end()) return "";
  CheckId(name, it->second);
  return it->second;
}

std::optional<int64_t> Digits(const std::string& s, size_t max_digits = 18) {
  if (s.empty() || s.size() > max_digits) return std::nullopt;
  int64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + (c - '0');
  }
  return v;
}


std::optional<int64_t> ParseDay(const std::string& s) {
  if (s.size() != 10 || s[4] != '-' || s[7] != '-') return std::nullopt;
  auto y = Digits(s.substr(0, 4)), m = Digits(s.substr(5, 2)), d = Digits(s.substr(8, 2));
  if (!y || !m || !d || *y < 1970 || *m < 1 || *m > 12 || *d < 1) return std::nullopt;
  static constexpr int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  const bool leap = (*y % 4 == 0 && *y % 100 != 0) || *y % 400 == 0;
  const int max = kDays[*m - 1] + (*m == 2 && leap ? 1 : 0);
  if (*d > max) return std::nullopt;
  return DaysFromCivil(*y, static_cast<unsigned>(*m), static_cast<unsigned>(*d));
}

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// ---- cursors: base64url("c1:" + last id), opaque to clients ------------------------

const char kB64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

std::string EncodeCursor(const std::string& id) {
  const std::string in = kCursorPrefix + id;
  std::string out;
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    const unsigned v = (static_cast<unsigned char>(in[i]) << 16) | (static_cast<unsigned char>(in[i + 1]) << 8) |
                       static_cast<unsigned char>(in[i + 2]);
    out += {kB64[(v >> 18) & 63], kB64[(v >> 12) & 63], kB64[(v >> 6) & 63], kB64[v & 63]};
  }
  if (i + 1 == in.size()) {
    const unsigned v = static_cast<unsigned char>(in[i]) << 16;
    out += {kB64[(v >> 18) & 63], kB64[(v >> 12) & 63]};
  } else if (i + 2 == in.size()) {
    const unsigned v = (static_cast<unsigned char>(in[i]) << 16) | (static_cast<unsigned char>(in[i + 1]) << 8);
    out += {kB64[(v >> 18) & 63], kB64[(v >> 12) & 63], kB64[(v >> 6) & 63]};
  }
  return out;
}

std::string DecodeCursor(const std::string& c) {
  if (c.empty() || c.size() > 4 * kMaxParamChars / 3 || c.size() % 4 == 1) BadParam("cursor", "not a cursor from this API");
  std::string out;
  unsigned acc = 0;
  int bits = 0;
  for (char ch : c) {
    const char* at = std::strchr(kB64, ch);
    if (!at || ch == '\0') BadParam("cursor", "not a cursor from this API");
    acc = (acc << 6) | static_cast<unsigned>(at - kB64);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xff));
    }
  }
  if (out.rfind(kCursorPrefix, 0) != 0) BadParam("cursor", "not a cursor from this API");
  std::string id = out.substr(std::strlen(kCursorPrefix));
  if (id.empty() || id.size() > kMaxIdChars || !std::all_of(id.begin(), id.end(), IsIdChar)) {
    BadParam("cursor", "not a cursor from this API");
  }
  return id;
}

std::string NewCommandId() {
  unsigned char bytes[12];
  if (RAND_bytes(bytes, sizeof bytes) != 1) {
    // No entropy source: time and a counter still make it unique in this process.
    static std::atomic<uint64_t> counter{0};
    return "api-" + std::to_string(NowMs()) + "-" + std::to_string(counter.fetch_add(1));
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string id = "api-";
  for (unsigned char b : bytes) {
    id.push_back(kHex[b >> 4]);
    id.push_back(kHex[b & 15]);
  }
  return id;
}

std::string Str(const json& obj, const char* key) {
  if (!obj.is_object()) return "";
  auto it = obj.find(key);
  return it != obj.end() && it->is_string() ? it->get<std::string>() : std::string();
}

std::string LowerAscii(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

}  // namespace

// ---- state ------------------------------------------------------------------------

struct ApiServer::State {
  State(Backend& b, const ApiOptions& o, MetricsRegistry& m, TokenTable t)
      : backend(b), options(o), metrics(m), tokens(std::move(t)) {}

  Backend& backend;
  ApiOptions options;
  MetricsRegistry& metrics;
  TokenTable tokens;
  std::unique_ptr<EventFanout> fanout;
  Gauge* stream_gauge = nullptr;

  std::mutex streams_mu;
  size_t streams = 0;
  std::map<std::string, size_t> streams_by_token;

  std::mutex offset_mu;
  std::optional<int> utc_offset_minutes;

  int UtcOffsetMinutes() {
    std::lock_guard<std::mutex> lock(offset_mu);
    if (!utc_offset_minutes) {
      const json city = backend.City();
      auto it = city.find("utc_offset_minutes");
      if (it == city.end() || !it->is_number_integer()) return 0;  // not cached: ask again next time
      utc_offset_minutes = it->get<int>();
    }
    return *utc_offset_minutes;
  }

  void CountCommand(const char* outcome) {
    metrics.GetCounter("cityloop_api_commands_total", "Operator commands the API submitted, by outcome",
                       {{"outcome", outcome}})
        .Inc();
  }
};

namespace {

using State = ApiServer::State;
using AuthedFn = std::function<HttpResponse(const HttpRequest&, const Principal&)>;

HttpResponse Unauthorized(AuthFailure f) {
  ApiError e{401, "unauthorized", AuthFailureMessage(f), "", {}};
  e.headers.emplace_back("WWW-Authenticate", f == AuthFailure::kMissing
                                                 ? std::string("Bearer realm=\"cityloop\"")
                                                 : std::string("Bearer realm=\"cityloop\", error=\"invalid_token\""));
  return ErrorResponse(e);
}

// A handler that needs a valid token; ApiErrors become error responses.
Handler Authed(std::shared_ptr<State> st, AuthedFn fn) {
  return [st = std::move(st), fn = std::move(fn)](const HttpRequest& req) -> HttpResponse {
    auto auth = st->tokens.Authenticate(req.header("authorization"));
    if (const AuthFailure* f = std::get_if<AuthFailure>(&auth)) return Unauthorized(*f);
    const Principal& who = std::get<Principal>(auth);
    HttpResponse r;
    try {
      r = fn(req, who);
    } catch (const ApiError& e) {
      r = ErrorResponse(e);
    }
    r.log_user = who.name;
    return r;
  };
}

// The case if it exists and who may see it; else 404 (a case of another
// district is not told apart from a missing one).
json VisibleCase(State& st, const std::string& id, const Principal& who) {
  auto got = st.backend.GetCase(id);
  if (!got.ok()) Internal(got.status(), "reading case " + id);
  if (!*got || !who.Sees(Str(**got, "district"))) Fail(404, "not_found", "no case '" + id + "'");
  return std::move(**got);
}

void CheckDistrictParam(const Principal& who, const std::string& district) {
  if (!district.empty() && !who.Sees(district)) {
    Fail(403, "forbidden", "district '" + district + "' is outside this token's districts");
  }
}

// ---- GET /api/v1/cases ---------------------------------------------------------------

HttpResponse ListCases(State& st, const HttpRequest& req, const Principal& who) {
  CheckParams(req, {"status", "dept", "grid", "category", "district", "since", "limit", "cursor"});
  std::optional<CaseStatus> status;
  bool open_only = false;
  if (auto it = req.query.find("status"); it != req.query.end()) {
    if (it->second == "open") {
      open_only = true;
    } else if (auto s = ParseCaseStatus(it->second)) {
      status = s;
    } else {
      BadParam("status", "'" + it->second +
                             "' is not a status (open, detected, registered, dispatched, acknowledged, enroute, "
                             "onscene, handled, verifying, closed, invalid, merged, returned, suspended, deferred)");
    }
  }
  const std::string dept = IdParam(req, "dept");
  const std::string grid = IdParam(req, "grid");
  const std::string category = IdParam(req, "category");
  const std::string district = IdParam(req, "district");
  CheckDistrictParam(who, district);
  std::optional<int64_t> since;
  if (auto it = req.query.find("since"); it != req.query.end()) {
    since = Digits(it->second);
    if (!since) since = ParseRfc3339Ms(it->second);
    if (!since) BadParam("since", "expected an RFC 3339 time (2026-11-28T08:00:00Z) or epoch milliseconds");
  }
  int limit = kDefaultLimit;
  if (auto it = req.query.find("limit"); it != req.query.end()) {
    auto v = Digits(it->second, 6);
    if (!v || *v < 1 || *v > kMaxLimit) BadParam("limit", "expected an integer 1.." + std::to_string(kMaxLimit));
    limit = static_cast<int>(*v);
  }
  std::string after;
  if (auto it = req.query.find("cursor"); it != req.query.end()) after = DecodeCursor(it->second);

  json cases = json::array();
  size_t scanned = 0;
  std::string last_scanned;
  bool more = false, budget_spent = false;
  const Status walked = st.backend.ForEachCase(after, [&](const json& c) {
    ++scanned;
    last_scanned = Str(c, "id");
    const std::string s = Str(c, "status");
    bool match = who.Sees(Str(c, "district"));
    if (match && open_only) {
      auto parsed = ParseCaseStatus(s);
      match = parsed && CaseIsOpen(*parsed);
    }
    if (match && status) match = s == CaseStatusName(*status);
    if (match && !dept.empty()) match = Str(c, "department") == dept;
    if (match && !grid.empty()) match = Str(c, "grid") == grid;
    if (match && !category.empty()) match = Str(c, "category") == category;
    if (match && !district.empty()) match = Str(c, "district") == district;
    if (match && since) match = c.value("updated", int64_t{0}) >= *since;
    if (match) {
      if (static_cast<int>(cases.size()) == limit) {
        more = true;
        return false;
      }
      cases.push_back(c);
    }
    if (scanned >= kScanBudget) {
      budget_spent = true;
      return false;
    }
    return true;
  });
  if (!walked.ok()) Internal(walked, "listing cases");
  json next = nullptr;
  if (more) {
    next = EncodeCursor(Str(cases.back(), "id"));
  } else if (budget_spent && !last_scanned.empty()) {
    next = EncodeCursor(last_scanned);  // a short page, not the end: go on from here
  }
  return JsonResponse(200, json{{"cases", std::move(cases)}, {"next_cursor", std::move(next)}});
}

// ---- GET /api/v1/cases/{id} ------------------------------------------------------------

HttpResponse GetCaseDetail(State& st, const HttpRequest& req, const Principal& who) {
  CheckParams(req, {});
  const std::string& id = req.params.at("id");
  CheckId("id", id);
  json kase = VisibleCase(st, id, who);
  auto entries = st.backend.Timeline(id);
  if (!entries.ok()) Internal(entries.status(), "reading the timeline of " + id);

  json timeline = json::array();
  const json* newest_order = nullptr;
  for (json& e : *entries) {
    if (e.is_object()) e.erase("case");  // the case as it was (most entries): not needed here
    timeline.push_back(std::move(e));
  }
  for (const json& e : timeline) {
    if (Str(e, "action") == "city.dispatch.order") newest_order = &e;
  }

  json snapshots = json::array();
  std::set<std::string> seen;
  if (auto sig = kase.find("signals"); sig != kase.end() && sig->is_array()) {
    for (const json& s : *sig) {
      const json attrs = s.is_object() ? s.value("attributes", json::object()) : json::object();
      for (const char* key : {"snapshot", "snapshot_annotated"}) {
        const std::string snap = Str(attrs, key);
        if (!snap.empty() && seen.insert(snap).second) snapshots.push_back(snap);
      }
    }
  }

  // The case's recommended unit first, then the newest order's other candidates.
  json units = json::array();
  json candidates = json::array();
  if (newest_order) {
    const json detail = newest_order->value("detail", json::object());
    if (auto c = detail.find("candidates"); c != detail.end() && c->is_array()) candidates = *c;
  }
  const std::string recommended = Str(kase, "recommended_unit");
  if (!recommended.empty()) {
    json first{{"unit_id", recommended}};
    for (const json& c : candidates) {
      if (Str(c, "unit_id") == recommended && c.is_object()) first = c;
    }
    first["recommended"] = true;
    units.push_back(std::move(first));
  }
  for (const json& c : candidates) {
    if (!c.is_object() || Str(c, "unit_id").empty() || Str(c, "unit_id") == recommended) continue;
    json alt = c;
    alt["recommended"] = false;
    units.push_back(std::move(alt));
  }
  return JsonResponse(200, json{{"case", std::move(kase)},
                                {"timeline", std::move(timeline)},
                                {"snapshots", std::move(snapshots)},
                                {"recommended_units", std::move(units)}});
}

// ---- POST /api/v1/cases/{id}/actions ------------------------------------------------------

// Waits for the engine's answer to one command: a rejection naming it, or an
// event on its case after which the case lists it among recent_commands.
class ActionWatch final : public EventListener, public std::enable_shared_from_this<ActionWatch> {
 public:
  ActionWatch(State& st, std::string case_id, std::string into, std::string command_id, std::string user)
      : st_(st), case_id_(std::move(case_id)), into_(std::move(into)), command_id_(std::move(command_id)),
        user_(std::move(user)) {}
  ~ActionWatch() override {
    if (armed_) st_.fanout->Remove(this);
  }

  // On the connection's strand: listen, then submit.
  void Run(const json& command, std::shared_ptr<Responder> responder) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      responder_ = responder;
    }
    st_.fanout->Add(this);
    armed_ = true;
    const Status sent = st_.backend.SubmitCommand(command);
    if (!sent.ok()) {
      spdlog::warn("api: command {} for {} could not be submitted: {}", command_id_, case_id_, sent.ToString());
      st_.CountCommand("failed");
      ApiError e{503, "unavailable", "the command could not be submitted: " + sent.message(), "", {}};
      e.headers.emplace_back("Retry-After", "5");
      Finish(ErrorResponse(e));
    }
  }

  void OnEvent(const std::shared_ptr<const EventView>& ev) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (!responder_ || done_) return;
    if (ev->type == "city.command.rejected") {
      if (ev->command_id != command_id_) return;
      done_ = true;
      st_.CountCommand("rejected");
      ApiError e{409, "command_rejected", ev->message.empty() ? ev->reason : ev->message, "", {}};
      json body{{"error",
                 {{"code", "command_rejected"},
                  {"reason", ev->reason},
                  {"message", ev->message.empty() ? "the engine rejected the command (" + ev->reason + ")" : ev->message},
                  {"command_id", command_id_}}}};
      HttpResponse r = JsonResponse(409, body);
      r.log_user = user_;
      responder_->Send(std::move(r));
      return;
    }
    if (ev->subject != case_id_ && (into_.empty() || ev->subject != into_)) return;
    if (check_posted_) return;
    check_posted_ = true;
    std::weak_ptr<ActionWatch> weak = weak_from_this();
    responder_->Post([weak] {
      if (auto w = weak.lock()) w->Check();
    });
  }

 private:
  void Finish(HttpResponse r) {
    std::lock_guard<std::mutex> lock(mu_);
    if (done_) return;
    done_ = true;
    r.log_user = user_;
    responder_->Send(std::move(r));
  }

  // On the strand: has the case taken the command?
  void Check() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      check_posted_ = false;
      if (done_) return;
    }
    auto got = st_.backend.GetCase(case_id_);
    if (!got.ok() || !*got) return;
    const json& kase = **got;
    auto rc = kase.find("recent_commands");
    if (rc == kase.end() || !rc->is_array()) return;
    const bool applied = std::any_of(rc->begin(), rc->end(),
                                     [&](const json& c) { return c.is_string() && c.get<std::string>() == command_id_; });
    if (!applied) return;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (done_) return;
    }
    st_.CountCommand("applied");
    Finish(JsonResponse(200, json{{"status", "applied"}, {"command_id", command_id_}, {"case", kase}}));
  }

  State& st_;
  const std::string case_id_, into_, command_id_, user_;
  std::mutex mu_;
  std::shared_ptr<Responder> responder_;
  bool done_ = false;
  bool check_posted_ = false;
  bool armed_ = false;
};

std::string BodyString(const json& body, const char* field, size_t max_bytes) {
  auto it = body.find(field);
  if (it == body.end() || it->is_null()) return "";
  if (!it->is_string()) BadParam(field, "must be a string");
  const std::string v = it->get<std::string>();
  if (v.size() > max_bytes) BadParam(field, "longer than " + std::to_string(max_bytes) + " bytes");
  return v;
}

std::string BodyId(const json& body, const char* field) {
  std::string v = BodyString(body, field, kMaxIdChars);
  if (!v.empty()) CheckId(field, v);
  return v;
}

HttpResponse PostAction(const std::shared_ptr<State>& stp, const HttpRequest& req, const Principal& who) {
  State& st = *stp;
  CheckParams(req, {});
  const std::string& id = req.params.at("id");
  CheckId("id", id);
  const std::string media = LowerAscii(req.header("content-type").substr(0, req.header("content-type").find(';')));
  std::string trimmed = media;
  while (!trimmed.empty() && trimmed.back() == ' ') trimmed.pop_back();
  if (trimmed != "application/json") {
    Fail(415, "unsupported_media_type", "send the action as Content-Type: application/json");
  }
  const json body = json::parse(req.body, nullptr, /*allow_exceptions=*/false);
  if (body.is_discarded()) Fail(400, "bad_json", "the body is not valid JSON");
  if (!body.is_object()) Fail(400, "bad_json", "the body must be a JSON object {\"action\": ..., \"note\": ...}");
  static const std::set<std::string> kFields = {"action", "note", "department", "into", "duration", "unit_id",
                                                "command_id"};
  for (const auto& [k, v] : body.items()) {
    if (!kFields.count(k)) {
      BadParam(k.size() > 64 ? k.substr(0, 64) : k,
               "unknown field (known: action, note, department, into, duration, unit_id, command_id)");
    }
  }
  auto act_it = body.find("action");
  if (act_it == body.end() || act_it->is_null()) BadParam("action", "is required");
  if (!act_it->is_string()) BadParam("action", "must be a string");
  const std::optional<CaseAction> action = ParseCaseAction(act_it->get<std::string>());
  if (!action) {
    std::string list;
    for (int i = 0; i < kCaseActionCount; ++i) {
      list += std::string(list.empty() ? "" : ", ") + CaseActionName(static_cast<CaseAction>(i));
    }
    BadParam("action", "'" + act_it->get<std::string>().substr(0, 64) + "' is not an action (" + list + ")");
  }
  const std::string note = BodyString(body, "note", kMaxNoteBytes);
  const std::string department = BodyId(body, "department");
  const std::string into = BodyId(body, "into");
  const std::string unit_id = BodyId(body, "unit_id");
  std::string client_command_id = BodyId(body, "command_id");
  if (client_command_id.size() > 64) BadParam("command_id", "longer than 64 characters");
  json duration = nullptr;
  if (auto d = body.find("duration"); d != body.end() && !d->is_null()) {
    int64_t ms = 0;
    if (d->is_string()) {
      const std::string text = d->get<std::string>();
      auto parsed = text.size() <= 16 ? ParseDurationMs(text) : std::nullopt;
      if (!parsed) BadParam("duration", "expected a duration such as 30m, 2h or 1d, or integer milliseconds");
      ms = *parsed;
    } else if (d->is_number_integer()) {
      ms = d->get<int64_t>();
    } else {
      BadParam("duration", "expected a duration such as 30m, 2h or 1d, or integer milliseconds");
    }
    if (ms <= 0 || ms > kMaxDurationMs) BadParam("duration", "must be longer than 0 and at most 365d");
    duration = *d;
  }
  const std::string action_name = CaseActionName(*action);
  if ((*action == CaseAction::kReassign || *action == CaseAction::kAssist) && department.empty()) {
    BadParam("department", "is required for " + action_name);
  }
  if (*action == CaseAction::kMerge) {
    if (into.empty()) BadParam("into", "is required for merge");
    if (into == id) BadParam("into", "is the case itself");
  }
  if (*action == CaseAction::kExtend && duration.is_null()) BadParam("duration", "is required for extend");

  if (who.role == Role::kViewer) Fail(403, "forbidden", "a viewer token may not act on cases");
  const json kase = VisibleCase(st, id, who);
  const Role min = MinRoleFor(*action, kase);
  if (!AtLeast(who, min)) {
    Fail(403, "forbidden",
         std::string(RoleName(who.role)) + " may not " + action_name + " this case (needs " + RoleName(min) + ")");
  }
  if (*action == CaseAction::kMerge) {
    auto target = st.backend.GetCase(into);
    if (!target.ok()) Internal(target.status(), "reading case " + into);
    if (!*target || !who.Sees(Str(**target, "district"))) BadParam("into", "no case '" + into + "'");
  }

  const std::string command_id = client_command_id.empty() ? NewCommandId() : client_command_id;
  json command{{"command_id", command_id}, {"case_id", id},       {"action", action_name},
               {"actor", who.name},        {"role", RoleName(who.role)}, {"ts", NowMs()}};
  if (!note.empty()) command["note"] = note;
  if (!department.empty()) command["department"] = department;
  if (!into.empty()) command["into"] = into;
  if (!duration.is_null()) command["duration"] = duration;
  if (!unit_id.empty()) command["unit_id"] = unit_id;

  auto watch = std::make_shared<ActionWatch>(st, id, into, command_id, who.name);
  auto deferred = std::make_shared<DeferredResponse>();
  deferred->timeout = std::chrono::milliseconds(st.options.action_wait_ms);
  deferred->start = [watch, command](std::shared_ptr<Responder> responder) { watch->Run(command, std::move(responder)); };
  deferred->on_timeout = [stp, command_id, user = who.name] {
    stp->CountCommand("pending");
    HttpResponse r = JsonResponse(202, json{{"status", "pending"}, {"command_id", command_id}});
    r.log_user = user;
    return r;
  };
  spdlog::info("api: {} ({}) sends {} on {} as {}", who.name, RoleName(who.role), action_name, id, command_id);
  HttpResponse r;
  r.deferred = std::move(deferred);
  return r;
}

// ---- GET /api/v1/kpi ------------------------------------------------------------------------

HttpResponse GetKpi(State& st, const HttpRequest& req, const Principal& who) {
  CheckParams(req, {"group_by", "from", "to"});
  static const std::map<std::string, std::string> kGroups = {
      {"dept", "department"}, {"department", "department"}, {"district", "district"}, {"grid", "cell"},
      {"cell", "cell"},       {"category", "category"},     {"day", "day"},           {"total", "total"}};
  std::string group = "department";
  if (auto it = req.query.find("group_by"); it != req.query.end()) {
    auto g = kGroups.find(it->second);
    if (g == kGroups.end()) {
      BadParam("group_by", "'" + it->second + "' is not one of dept, department, district, grid, cell, category, day, total");
    }
    group = g->second;
  }
  const int64_t offset_ms = int64_t{st.UtcOffsetMinutes()} * 60000;
  const int64_t now = NowMs() + offset_ms;
  const int64_t today = now >= 0 ? now / 86400000 : (now - 86399999) / 86400000;
  std::optional<int64_t> from, to;
  for (const char* name : {"from", "to"}) {
    auto it = req.query.find(name);
    if (it == req.query.end()) continue;
    auto day = ParseDay(it->second);
    if (!day) BadParam(name, "expected a date YYYY-MM-DD (1970 or later), got '" + it->second.substr(0, 32) + "'");
    (std::string(name) == "from" ? from : to) = day;
  }
  if (!to) to = from ? std::min(today, *from + kKpiDefaultDays - 1) : today;
  if (!from) from = *to - (kKpiDefaultDays - 1);
  if (*from > *to) BadParam("from", "is after to");
  if (*to - *from + 1 > kKpiMaxDays) BadParam("from", "the range is longer than " + std::to_string(kKpiMaxDays) + " days");
  if (who.scoped() && group != "district" && group != "cell") {
    Fail(403, "forbidden",
         "a district-scoped token reads KPIs by district or grid only (other groups mix districts)");
  }
  auto kpi = st.backend.Kpi(group, *from, *to);
  if (!kpi.ok()) Internal(kpi.status(), "reading KPIs");
  json out = std::move(*kpi);
  if (who.scoped() && out.is_object() && out.contains("rows") && out["rows"].is_array()) {
    json kept = json::array();
    for (const json& row : out["rows"]) {
      const std::string g = Str(row, "group");
      const std::string district = group == "district" ? g : st.backend.DistrictOfCell(g);
      if (who.Sees(district)) kept.push_back(row);
    }
    out["rows"] = std::move(kept);
  }
  return JsonResponse(200, out);
}

// ---- GET /api/v1/stream ------------------------------------------------------------------------

// Holds one stream's place in the limits; gives it back when the stream goes.
class StreamSlot {
 public:
  StreamSlot(std::shared_ptr<State> st, std::string token) : st_(std::move(st)), token_(std::move(token)) {}
  ~StreamSlot() {
    std::lock_guard<std::mutex> lock(st_->streams_mu);
    --st_->streams;
    if (--st_->streams_by_token[token_] == 0) st_->streams_by_token.erase(token_);
    st_->stream_gauge->Set(static_cast<double>(st_->streams));
  }
  StreamSlot(const StreamSlot&) = delete;
  StreamSlot& operator=(const StreamSlot&) = delete;

 private:
  std::shared_ptr<State> st_;
  std::string token_;
};

HttpResponse OpenStream(const std::shared_ptr<State>& stp, const HttpRequest& req, const Principal& who) {
  State& st = *stp;
  CheckParams(req, {"type", "dept", "district", "grid", "category", "case", "last_event_id"});
  StreamFilter filter;
  filter.who = who;
  if (auto it = req.query.find("type"); it != req.query.end()) {
    size_t start = 0;
    const std::string& v = it->second;
    while (start <= v.size()) {
      const size_t comma = v.find(',', start);
      std::string p = v.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
      if (p.empty() || !std::all_of(p.begin(), p.end(), IsIdChar)) {
        BadParam("type", "expected CloudEvents type prefixes such as city.case. or city.dispatch.order, comma-separated");
      }
      filter.type_prefixes.push_back(std::move(p));
      if (comma == std::string::npos) break;
      start = comma + 1;
    }
  }
  filter.department = IdParam(req, "dept");
  filter.district = IdParam(req, "district");
  filter.grid = IdParam(req, "grid");
  filter.category = IdParam(req, "category");
  filter.case_id = IdParam(req, "case");
  CheckDistrictParam(who, filter.district);

  LiveStream::Options opts;
  opts.queue_limit = static_cast<size_t>(std::max(1, st.options.stream_queue_limit));
  std::string last_id = req.header("last-event-id");
  const char* last_id_name = "Last-Event-ID";
  if (last_id.empty()) {
    if (auto it = req.query.find("last_event_id"); it != req.query.end()) {
      last_id = it->second;
      last_id_name = "last_event_id";
    }
  }
  if (!last_id.empty()) {
    auto v = Digits(last_id, 19);
    if (!v) BadParam(last_id_name, "expected the id (a sequence number) of the last event received");
    opts.resume_after = static_cast<uint64_t>(*v);
  }

  {
    std::lock_guard<std::mutex> lock(st.streams_mu);
    if (st.options.max_streams <= 0 || st.streams >= static_cast<size_t>(st.options.max_streams)) {
      ApiError e{503, "too_many_streams", "the server has as many live streams as it serves (api.max_streams)", "", {}};
      e.headers.emplace_back("Retry-After", "10");
      throw e;
    }
    auto& mine = st.streams_by_token[who.name];
    if (mine >= static_cast<size_t>(st.options.max_streams_per_token)) {
      if (mine == 0) st.streams_by_token.erase(who.name);
      ApiError e{429, "too_many_streams", "this token has as many live streams as it may (api.max_streams_per_token)",
                 "", {}};
      e.headers.emplace_back("Retry-After", "10");
      throw e;
    }
    ++mine;
    ++st.streams;
    st.stream_gauge->Set(static_cast<double>(st.streams));
  }
  auto slot = std::make_shared<StreamSlot>(stp, who.name);
  const std::string user = who.name;
  const std::string remote = req.remote;
  auto on_end = [stp, slot, user, remote](StreamEnd why, uint64_t sent) {
    if (why == StreamEnd::kOverflow || why == StreamEnd::kWriteTimeout) {
      stp->metrics
          .GetCounter("cityloop_stream_dropped_clients_total", "Stream clients disconnected for being too slow",
                      {{"reason", StreamEndName(why)}})
          .Inc();
      spdlog::warn("api stream of {} ({}) dropped: {} after {} events", user, remote, StreamEndName(why), sent);
    } else {
      spdlog::info("api stream of {} ({}) closed: {} after {} events", user, remote, StreamEndName(why), sent);
    }
  };
  auto stream = LiveStream::Make(st.backend, *st.fanout, std::move(filter), opts, std::move(on_end));
  HttpResponse r;
  r.status = 200;
  r.content_type = "text/event-stream; charset=utf-8";
  r.headers.emplace_back("Cache-Control", "no-cache");
  r.headers.emplace_back("X-Accel-Buffering", "no");
  r.stream = stream->Response(std::chrono::milliseconds(st.options.heartbeat_ms),
                              std::chrono::milliseconds(st.options.request_timeout_ms), kStreamSendBuffer);
  return r;
}

// ---- CORS --------------------------------------------------------------------------------------

// "http://Host:8080" vs the Host header "host:8080" (default ports implied).
bool SameOrigin(const std::string& origin, const std::string& host) {
  if (host.empty()) return false;
  const std::string o = LowerAscii(origin);
  std::string authority;
  std::string default_port;
  if (o.rfind("http://", 0) == 0) {
    authority = o.substr(7);
    default_port = ":80";
  } else if (o.rfind("https://", 0) == 0) {
    authority = o.substr(8);
    default_port = ":443";
  } else {
    return false;
  }
  const std::string h = LowerAscii(host);
  return authority == h || authority + default_port == h || authority == h + default_port;
}

bool OriginListed(const ApiOptions& options, const std::string& origin) {
  const std::string o = LowerAscii(origin);
  return std::any_of(options.cors_origins.begin(), options.cors_origins.end(),
                     [&](const std::string& a) { return a == "*" || LowerAscii(a) == o; });
}

bool HasHeader(const HttpResponse& r, const std::string& name) {
  const std::string n = LowerAscii(name);
  return std::any_of(r.headers.begin(), r.headers.end(), [&](const auto& h) { return LowerAscii(h.first) == n; });
}

std::optional<HttpResponse> BeforeRequest(const State& st, const HttpRequest& req) {
  const std::string& origin = req.header("origin");
  if (origin.empty()) return std::nullopt;
  const bool safe = req.method == "GET" || req.method == "HEAD" || req.method == "OPTIONS";
  if (!safe && !SameOrigin(origin, req.header("host")) && !OriginListed(st.options, origin)) {
    return ErrorResponse(ApiError{403, "forbidden_origin",
                                  "requests from origin '" + origin.substr(0, 128) +
                                      "' may not change anything (api.cors_origins)",
                                  "",
                                  {}});
  }
  return std::nullopt;
}

void AfterRequest(const State& st, const HttpRequest& req, HttpResponse& r) {
  if (!HasHeader(r, "X-Content-Type-Options")) r.headers.emplace_back("X-Content-Type-Options", "nosniff");
  if (req.path.rfind("/api/", 0) == 0 && !HasHeader(r, "Cache-Control")) {
    r.headers.emplace_back("Cache-Control", "no-store");
  }
  const std::string& origin = req.header("origin");
  if (!st.options.cors_origins.empty()) r.headers.emplace_back("Vary", "Origin");
  if (origin.empty() || !OriginListed(st.options, origin)) return;
  r.headers.emplace_back("Access-Control-Allow-Origin", origin);
  r.headers.emplace_back("Access-Control-Expose-Headers", "Retry-After, WWW-Authenticate");
  if (req.method == "OPTIONS" && !req.header("access-control-request-method").empty()) {
    std::string allow;
    for (const auto& [k, v] : r.headers) {
      if (LowerAscii(k) == "allow") allow = v;
    }
    if (!allow.empty()) r.headers.emplace_back("Access-Control-Allow-Methods", allow);
    r.headers.emplace_back("Access-Control-Allow-Headers", "Authorization, Content-Type, Last-Event-ID");
    r.headers.emplace_back("Access-Control-Max-Age", "600");
  }
}

const std::vector<double>& LatencyBuckets() {
  static const std::vector<double> b = {1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000};
  return b;
}

std::map<std::string, Handler> MakeRoutes(const std::shared_ptr<State>& st) {
  std::map<std::string, Handler> routes = OperationalRoutes(st->metrics, [st] { return st->backend.ready(); });
  AddWebRoutes(routes, st->options.web_root.empty() ? DefaultWebRoot() : st->options.web_root);

  State* s = st.get();
  routes["GET /api/v1/cases"] = Authed(st, [s](const HttpRequest& r, const Principal& w) { return ListCases(*s, r, w); });
  routes["GET /api/v1/cases/{id}"] =
      Authed(st, [s](const HttpRequest& r, const Principal& w) { return GetCaseDetail(*s, r, w); });
  routes["POST /api/v1/cases/{id}/actions"] =
      Authed(st, [st](const HttpRequest& r, const Principal& w) { return PostAction(st, r, w); });
  routes["GET /api/v1/kpi"] = Authed(st, [s](const HttpRequest& r, const Principal& w) { return GetKpi(*s, r, w); });
  routes["GET /api/v1/units"] = Authed(st, [s](const HttpRequest& r, const Principal&) {
    CheckParams(r, {});
    auto units = s->backend.Units();
    if (!units.ok()) Internal(units.status(), "reading units");
    return JsonResponse(200, json{{"units", std::move(*units)}});
  });
  routes["GET /api/v1/city"] = Authed(st, [s](const HttpRequest& r, const Principal&) {
    CheckParams(r, {});
    HttpResponse res = JsonResponse(200, s->backend.City());
    const std::string etag = "\"" + Sha256Hex(res.body).substr(0, 32) + "\"";
    res.headers.emplace_back("ETag", etag);
    res.headers.emplace_back("Cache-Control", "private, no-cache");
    if (r.header("if-none-match") == etag) {
      res.status = 304;
      res.body.clear();
    }
    return res;
  });
  routes["GET /api/v1/whoami"] = Authed(st, [](const HttpRequest& r, const Principal& w) {
    CheckParams(r, {});
    return JsonResponse(200, w.ToJson());
  });
  routes["GET /api/v1/stream"] =
      Authed(st, [st](const HttpRequest& r, const Principal& w) { return OpenStream(st, r, w); });

  std::map<std::string, Handler> snapshot;
  AddSnapshotRoutes(snapshot, [s](const std::string& id) { return s->backend.Snapshot(id); });
  Handler fetch = snapshot.begin()->second;
  routes[snapshot.begin()->first] = Authed(st, [fetch](const HttpRequest& r, const Principal&) {
    CheckParams(r, {});
    CheckId("id", r.params.at("id"));
    return fetch(r);
  });
  return routes;
}

}  // namespace

// ---- ApiServer ---------------------------------------------------------------------------

struct ApiServer::ServerHolder {
  std::unique_ptr<HttpServer> http;
  std::vector<std::string> routes;
};

Result<std::unique_ptr<ApiServer>> ApiServer::Start(Backend& backend, const ApiOptions& options,
                                                    MetricsRegistry& metrics, const std::string& listen) {
  auto tokens = TokenTable::Build(options.tokens);
  if (!tokens.ok()) return tokens.status();
  if (options.tokens.empty()) {
    spdlog::warn("api: no api.tokens configured: every /api/v1 request will be refused (401)");
  }
  auto st = std::make_shared<State>(backend, options, metrics, std::move(tokens).value());
  st->stream_gauge = &metrics.GetGauge("cityloop_stream_clients", "Live stream (SSE) clients connected");
  metrics.GetCounter("cityloop_stream_dropped_clients_total", "Stream clients disconnected for being too slow",
                     {{"reason", StreamEndName(StreamEnd::kOverflow)}});
  st->fanout = std::make_unique<EventFanout>(backend);

  HttpServerOptions http;
  http.threads = options.threads;
  http.max_body_bytes = static_cast<size_t>(options.max_body_bytes);
  http.max_header_bytes = static_cast<size_t>(options.max_header_bytes);
  http.request_timeout = std::chrono::milliseconds(options.request_timeout_ms);
  http.max_connections = static_cast<size_t>(std::max(0, options.max_connections));
  http.access_log = options.access_log;
  State* s = st.get();
  http.before = [s](const HttpRequest& req) { return BeforeRequest(*s, req); };
  http.after = [s](const HttpRequest& req, HttpResponse& res) { AfterRequest(*s, req, res); };
  http.observer = [s](const HttpRequest& req, const HttpResponse& res, double ms) {
    const std::string route = req.route.empty() ? "unmatched" : req.route;
    s->metrics
        .GetCounter("cityloop_http_requests_total", "HTTP requests answered, by route and status code",
                    {{"route", route}, {"code", std::to_string(res.status)}})
        .Inc();
    s->metrics.GetHistogram("cityloop_http_request_ms", "HTTP request latency to the response head, by route",
                            LatencyBuckets(), {{"route", route}})
        .Observe(ms);
  };

  auto routes = MakeRoutes(st);
  std::vector<std::string> keys;
  for (const auto& [k, h] : routes) keys.push_back(k);
  auto server = HttpServer::Start(listen.empty() ? options.listen : listen, std::move(routes), std::move(http));
  if (!server.ok()) return server.status();

  std::unique_ptr<ApiServer> api(new ApiServer());
  api->state_ = std::move(st);
  api->server_ = std::make_unique<ServerHolder>();
  api->server_->http = std::move(server).value();
  api->server_->routes = std::move(keys);
  spdlog::info("api: listening on port {} with {} token(s)", api->port(), options.tokens.size());
  return api;
}

ApiServer::~ApiServer() { Stop(); }

uint16_t ApiServer::port() const { return server_->http->port(); }

void ApiServer::Stop() {
  if (!server_ || !server_->http) return;
  state_->fanout->Detach();  // no hub callback runs from here on
  server_->http->Stop();     // ends streams and pending actions
}

void ApiServer::WaitEventsDelivered() { state_->fanout->WaitDelivered(); }

size_t ApiServer::stream_clients() const {
  std::lock_guard<std::mutex> lock(state_->streams_mu);
  return state_->streams;
}

std::vector<std::string> ApiServer::routes() const { return server_->routes; }

}  // namespace cityloop::console
