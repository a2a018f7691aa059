// Who is calling the API: bearer tokens (api.tokens, kept only as SHA-256
// digests and compared in constant time), their role and district scope, and
// the least role each operator action needs at the API. The engine checks the
// workflow itself (status, second extension, ...) and audits the actor.
#pragma once

#include <array>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/case_lifecycle.h"
#include "core/config.h"
#include "core/status.h"

namespace cityloop::console {

using Sha256Digest = std::array<unsigned char, 32>;
Sha256Digest Sha256(std::string_view data);
std::string Sha256Hex(std::string_view data);  // lower-case hex
// Equal without a data-dependent early exit (OpenSSL CRYPTO_memcmp).
bool ConstantTimeEqual(const Sha256Digest& a, const Sha256Digest& b);

// An authenticated caller.
struct Principal {
  std::string name;
  Role role = Role::kViewer;
  std::vector<std::string> districts;  // empty: every district

  bool scoped() const { return !districts.empty(); }
  // May see things of this district? An unscoped principal sees everything;
  // a scoped one nothing without a district.
  bool Sees(const std::string& district) const;
  nlohmann::json ToJson() const;  // {name, role, districts}
};

// viewer 0 < operator 1 < supervisor 2 < admin 3.
int RoleRank(Role r);
bool AtLeast(const Principal& p, Role min);

enum class AuthFailure {
  kMissing,    // no Authorization header
  kMalformed,  // not "Bearer <token>"
  kUnknown,    // no configured token has this digest
};
const char* AuthFailureMessage(AuthFailure f);

class TokenTable {
 public:
  // The tokens as the config loader validated them (sha256: 64 hex digits).
  static Result<TokenTable> Build(const std::vector<ApiOptions::Token>& tokens);
  // From an Authorization header value. Every configured digest is compared,
  // whatever matches, so the time taken does not tell which token is close.
  std::variant<Principal, AuthFailure> Authenticate(std::string_view authorization) const;
  size_t size() const { return entries_.size(); }

 private:
  struct Entry {
    Sha256Digest digest{};
    Principal who;
  };
  std::vector<Entry> entries_;
};

// The least role an action needs on this case (CaseToJson form) at the API:
// supervisor for suspend, defer, resume, reopen, merge and invalidate, and
// for close once the case was reworked (reworks > 0, a failed check);
// operator for the rest. A viewer acts on nothing. The engine has the last
// word (it may refuse more, e.g. a second extension by an operator: 409).
Role MinRoleFor(CaseAction action, const nlohmann::json& kase);

}  // namespace cityloop::console
