// Enum <-> name lookups over a constexpr table of {value, name} pairs, for
// the vocabulary's small enums (statuses, actions, roles).
#pragma once

#include <array>
#include <optional>
#include <string_view>
#include <utility>

namespace cityloop {

template <typename E, size_t N>
const char* NameIn(const std::array<std::pair<E, const char*>, N>& table, E value) {
  for (const auto& [v, name] : table) {
    if (v == value) return name;
  }
  return table[0].second;
}

template <typename E, size_t N>
std::optional<E> ParseIn(const std::array<std::pair<E, const char*>, N>& table, std::string_view name) {
  for (const auto& [v, n] : table) {
    if (name == n) return v;
  }
  return std::nullopt;
}

}  // namespace cityloop
