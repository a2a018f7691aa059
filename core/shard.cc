#include "core/shard.h"

namespace cityloop {

uint32_t StableHash(std::string_view s) {
  uint32_t h = 2166136261u;
  for (unsigned char c : s) {
    h ^= c;
    h *= 16777619u;
  }
  return h;
}

int ShardOfKey(std::string_view key, int count) {
  if (count <= 1) return 0;
  return static_cast<int>(StableHash(key) % static_cast<uint32_t>(count));
}

uint64_t ShardSequence(uint64_t n, ShardSpec s) {
  if (s.count <= 1) return n;
  return n * static_cast<uint64_t>(s.count) + static_cast<uint64_t>(s.index);
}

std::optional<int> ShardOfCaseId(std::string_view case_id, int count) {
  const size_t dash = case_id.rfind('-');
  if (dash == std::string_view::npos || dash + 1 == case_id.size() || case_id.size() - dash > 20) return std::nullopt;
  uint64_t number = 0;
  for (char c : case_id.substr(dash + 1)) {
    if (c < '0' || c > '9') return std::nullopt;
    number = number * 10 + static_cast<uint64_t>(c - '0');
  }
  if (count <= 1) return 0;
  return static_cast<int>(number % static_cast<uint64_t>(count));
}

}  // namespace cityloop
