#include "replay/run_output.h"

#include <openssl/evp.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "core/case_json.h"
#include "core/case_lifecycle.h"
#include "dispatch/case_history.h"
#include "dispatch/kpi.h"

namespace cityloop::replay {
namespace {

using nlohmann::json;

bool IsProvenanceKey(const std::string& k) {
  return k == "input" || k == "input_partition" || k == "input_offset";
}

bool IsProvenanceHeader(const std::string& name) {
  return name == "x-source-partition" || name == "x-source-offset";
}

void AppendField(std::string* out, std::string_view s) {
  const uint64_t n = s.size();
  out->append(reinterpret_cast<const char*>(&n), sizeof n);
  out->append(s);
}

}  // namespace

void StripProvenance(json& j) {
  if (j.is_object()) {
    for (auto it = j.begin(); it != j.end();) {
      if (IsProvenanceKey(it.key())) {
        it = j.erase(it);
      } else {
        StripProvenance(*it);
        ++it;
      }
    }
  } else if (j.is_array()) {
    for (json& e : j) StripProvenance(e);
  }
}

json OutputEventJson(const storage::OutboxRecord& r) {
  json headers = json::array();
  for (const auto& [name, value] : r.headers) {
    if (!IsProvenanceHeader(name)) headers.push_back({name, value});
  }
  json value = r.value.empty() || r.value[0] != '{' ? json() : json::parse(r.value, nullptr, false);
  if (value.is_object()) StripProvenance(value);
  else value = r.value;
  return json{{"topic", r.topic}, {"key", r.key}, {"headers", std::move(headers)}, {"value", std::move(value)}};
}

struct OutputDigest::Impl {
  EVP_MD_CTX* ctx = nullptr;
};

OutputDigest::OutputDigest() : impl_(std::make_unique<Impl>()) {
  impl_->ctx = EVP_MD_CTX_new();
  CL_CHECK(impl_->ctx != nullptr && EVP_DigestInit_ex(impl_->ctx, EVP_sha256(), nullptr) == 1);
}

OutputDigest::~OutputDigest() { EVP_MD_CTX_free(impl_->ctx); }

void OutputDigest::Add(const storage::OutboxRecord& r) {
  ++count_;
  scratch_.clear();
  AppendField(&scratch_, r.topic);
  AppendField(&scratch_, r.key);
  for (const auto& [name, value] : r.headers) {
    if (IsProvenanceHeader(name)) continue;
    AppendField(&scratch_, name);
    AppendField(&scratch_, value);
  }
  // Events are JSON and may carry input coordinates; dead letters are the
  // input's own bytes and stay as they are.
  json j = r.value.empty() || r.value[0] != '{' ? json() : json::parse(r.value, nullptr, false);
  if (j.is_object()) {
    StripProvenance(j);
    AppendField(&scratch_, j.dump());
  } else {
    AppendField(&scratch_, r.value);
  }
  CL_CHECK(EVP_DigestUpdate(impl_->ctx, scratch_.data(), scratch_.size()) == 1);
}

std::string OutputDigest::Hex() const {
  EVP_MD_CTX* copy = EVP_MD_CTX_new();
  CL_CHECK(copy != nullptr && EVP_MD_CTX_copy_ex(copy, impl_->ctx) == 1);
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  CL_CHECK(EVP_DigestFinal_ex(copy, md, &len) == 1);
  EVP_MD_CTX_free(copy);
  std::string out = "sha256:";
  char hex[3];
  for (unsigned int i = 0; i < len; ++i) {
    std::snprintf(hex, sizeof hex, "%02x", md[i]);
    out += hex;
  }
  return out;
}

Result<RunOutputCounts> WriteRunOutput(const storage::Store& store, const Config& config, const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return Status::IoError("cannot create " + dir + ": " + ec.message());
  const std::string cases_path = dir + "/cases.jsonl";
  std::ofstream cases(cases_path + ".tmp", std::ios::binary | std::ios::trunc);
  if (!cases) return Status::IoError("cannot write " + cases_path);

  dispatch::KpiBook book(config.kpi);
  book.set_track_dirty(false);
  RunOutputCounts counts;
  counts.first_day = std::numeric_limits<int32_t>::max();
  counts.last_day = std::numeric_limits<int32_t>::min();
  const int utc_offset = config.city.utc_offset_minutes;
  Status bad;
  std::vector<std::string> entries;
  CL_RETURN_IF_ERROR(store.ForEachCase([&](std::string_view id, std::string_view text) {
    auto c = ParseCaseJson(text);
    if (!c.ok()) {
      bad = Status::DataLoss("case " + std::string(id) + ": " + c.status().message());
      return false;
    }
    const dispatch::KpiContribution part = dispatch::Contribute(*c, utc_offset);
    book.Replace({}, part);
    for (const auto& [key, unused] : part.parts) {
      counts.first_day = std::min<int64_t>(counts.first_day, key.day);
      counts.last_day = std::max<int64_t>(counts.last_day, key.day);
    }
    ++counts.cases;
    if (CaseIsOpen(c->status)) ++counts.open_cases;
    entries.clear();
    bad = store.ForEachAudit(id, [&](uint32_t, std::string_view entry) {
      entries.emplace_back(entry);
      return true;
    });
    if (!bad.ok()) return false;
    auto timeline = dispatch::Timeline(entries);
    if (!timeline.ok()) {
      bad = Status::DataLoss("case " + std::string(id) + " audit: " + timeline.status().message());
      return false;
    }
    json j = CaseToJson(*c, /*with_signals=*/true);
    j["timeline"] = std::move(timeline).value();
    StripProvenance(j);
    cases << j.dump() << '\n';
    return true;
  }));
  CL_RETURN_IF_ERROR(bad);
  cases.flush();
  if (!cases) return Status::IoError("cannot write " + cases_path);
  cases.close();
  std::filesystem::rename(cases_path + ".tmp", cases_path, ec);
  if (ec) return Status::IoError("cannot rename " + cases_path + ": " + ec.message());

  if (counts.cases == 0 || counts.first_day > counts.last_day) counts.first_day = counts.last_day = 0;
  json by = json::object();
  for (dispatch::KpiGroup g : {dispatch::KpiGroup::kDepartment, dispatch::KpiGroup::kDistrict,
                               dispatch::KpiGroup::kCategory, dispatch::KpiGroup::kTotal}) {
    by[dispatch::KpiGroupName(g)] = book.QueryJson(g, counts.first_day, counts.last_day);
  }
  CL_RETURN_IF_ERROR(WriteTextFile(dir + "/kpi.json", json{{"by", std::move(by)}}.dump(2) + "\n"));
  return counts;
}

}  // namespace cityloop::replay
