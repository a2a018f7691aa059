#include "console/auth.h"

#include <algorithm>
#include <cctype>

#include <openssl/crypto.h>
#include <openssl/sha.h>

namespace cityloop::console {

Sha256Digest Sha256(std::string_view data) {
  Sha256Digest d{};
  SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(), d.data());
  return d;
}

std::string Sha256Hex(std::string_view data) {
  static constexpr char kHex[] = "0123456789abcdef";
  const Sha256Digest d = Sha256(data);
  std::string out;
  out.reserve(64);
  for (unsigned char c : d) {
    out.push_back(kHex[c >> 4]);
    out.push_back(kHex[c & 15]);
  }
  return out;
}

bool ConstantTimeEqual(const Sha256Digest& a, const Sha256Digest& b) {
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

bool Principal::Sees(const std::string& district) const {
  if (districts.empty()) return true;
  return !district.empty() && std::find(districts.begin(), districts.end(), district) != districts.end();
}

nlohmann::json Principal::ToJson() const {
  return {{"name", name}, {"role", RoleName(role)}, {"districts", districts}};
}


bool AtLeast(const Principal& p, Role min) { return RoleAtLeast(p.role, min); }

const char* AuthFailureMessage(AuthFailure f) {
  switch (f) {
    case AuthFailure::kMissing: return "this endpoint needs an Authorization: Bearer <token> header";
    case AuthFailure::kMalformed: return "the Authorization header is not 'Bearer <token>'";
    case AuthFailure::kUnknown: return "the token is not valid";
  }
  return "unauthorized";
}

namespace {

int Hex(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// RFC 6750 b64token.
bool IsTokenChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
         c == '_' || c == '~' || c == '+' || c == '/' || c == '=';
}

constexpr size_t kMaxTokenChars = 512;

}  // namespace

Result<TokenTable> TokenTable::Build(const std::vector<ApiOptions::Token>& tokens) {
  TokenTable t;
  for (const auto& tok : tokens) {
    if (tok.sha256.size() != 64) return Status::InvalidArgument("api token '" + tok.name + "': sha256 is not 64 hex digits");
    if (tok.role == Role::kSystem) return Status::InvalidArgument("api token '" + tok.name + "': role system is the engine's");
    Entry e;
    for (size_t i = 0; i < 32; ++i) {
      const int hi = Hex(tok.sha256[2 * i]), lo = Hex(tok.sha256[2 * i + 1]);
      if (hi < 0 || lo < 0) return Status::InvalidArgument("api token '" + tok.name + "': sha256 is not hex");
      e.digest[i] = static_cast<unsigned char>(hi * 16 + lo);
    }
    e.who.name = tok.name;
    e.who.role = tok.role;
    e.who.districts = tok.districts;
    t.entries_.push_back(std::move(e));
  }
  return t;
}

std::variant<Principal, AuthFailure> TokenTable::Authenticate(std::string_view authorization) const {
  if (authorization.empty()) return AuthFailure::kMissing;
  const size_t space = authorization.find(' ');
  if (space == std::string_view::npos) return AuthFailure::kMalformed;
  std::string scheme(authorization.substr(0, space));
  std::transform(scheme.begin(), scheme.end(), scheme.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (scheme != "bearer") return AuthFailure::kMalformed;
  std::string_view token = authorization.substr(space + 1);
  while (!token.empty() && token.front() == ' ') token.remove_prefix(1);
  while (!token.empty() && token.back() == ' ') token.remove_suffix(1);
  if (token.empty() || token.size() > kMaxTokenChars || !std::all_of(token.begin(), token.end(), IsTokenChar)) {
    return AuthFailure::kMalformed;
  }
  const Sha256Digest digest = Sha256(token);
  const Entry* match = nullptr;
  for (const Entry& e : entries_) {
    const bool same = ConstantTimeEqual(e.digest, digest);
    if (same && !match) match = &e;
  }
  if (!match) return AuthFailure::kUnknown;
  return match->who;
}

Role MinRoleFor(CaseAction action, const nlohmann::json& kase) {
  switch (action) {
    case CaseAction::kSuspend:
    case CaseAction::kDefer:
    case CaseAction::kResume:
    case CaseAction::kReopen:
    case CaseAction::kMerge:
    case CaseAction::kInvalidate:
      return Role::kSupervisor;
    case CaseAction::kClose: {
      const auto it = kase.find("reworks");
      const bool reworked = it != kase.end() && it->is_number() && it->get<double>() > 0;
      return reworked ? Role::kSupervisor : Role::kOperator;
    }
    default:
      return Role::kOperator;
  }
}

}  // namespace cityloop::console
