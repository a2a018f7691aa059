// Shards: how state is split when the service scales out (scale.shards > 0).
// A shard is one partition of the work topic; everything of one district —
// districts take the shards in turn, in config order —
// its devices, cameras, reports and cases — lives in the same shard, so rule
// state, correlations and case merging never cross shards except at district
// borders. Case numbers encode their shard, so a command finds its case's
// shard from the id alone. Pure functions; any thread.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace cityloop {

struct ShardSpec {
  int index = 0;  // this shard, 0 <= index < count
  int count = 1;  // 1: everything in one shard (no scale-out)
  bool operator==(const ShardSpec&) const = default;
};

// FNV-1a 32-bit: stable across builds and machines (routing depends on it).
uint32_t StableHash(std::string_view s);
// The shard of a routing key without a district (hashed).
int ShardOfKey(std::string_view key, int count);
// The n-th number (n = 1, 2, ...) that shard s takes from a sequence all
// shards share (case numbers, outbox seqs): shard i takes those = i mod count.
uint64_t ShardSequence(uint64_t n, ShardSpec s);
// The shard a case id ("CL-20261128-000123") belongs to; nullopt when the id
// does not end in a case number.
std::optional<int> ShardOfCaseId(std::string_view case_id, int count);

}  // namespace cityloop
