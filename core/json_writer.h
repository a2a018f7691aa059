// JsonWriter: writes JSON text straight into a string, with no DOM, and
// produces the same bytes as nlohmann::json::dump() of the equivalent value:
// object members come out sorted by key (nlohmann keeps objects in a
// std::map) and a later member with the same key replaces the earlier one
// (as `j[key] = v` does). So callers write members in whatever order reads
// best. Numbers are formatted as nlohmann formats them; strings are escaped
// as nlohmann escapes them (no \u escapes for non-ASCII). Strings must be
// valid UTF-8; everything that reaches the writer has been validated at
// ingest (simdjson) or comes from config.
//
// Why it exists: building and dumping nlohmann DOMs was ~85 % of the case
// engine's CPU (docs/PERFORMANCE.md, "Dispatch").
//
// Usage:
//   JsonWriter w;
//   w.BeginObject();
//   w.Key("id"); w.String(c.id);
//   w.Key("lat"); w.Double(c.position.lat);
//   w.EndObject();
//   std::string text = w.Take();
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace cityloop {

class JsonWriter {
 public:
  // kSorted: the caller writes the members in strictly ascending key order
  // (byte order, as std::string compares), so the writer need not track them
  // to sort. For fixed layouts (a case, an event envelope); tests check such
  // writers' output against nlohmann's canonical dump.
  enum class Order { kAny, kSorted };
  void BeginObject(Order order = Order::kAny);
  void EndObject();
  void BeginArray();
  void EndArray();
  // Inside an object: the next value's key.
  void Key(std::string_view key);

  void String(std::string_view s);
  void Int(int64_t v);
  void UInt(uint64_t v);
  void Double(double v);
  void Bool(bool v);
  void Null();
  // A value already written as JSON text (for example by another writer).
  void Raw(std::string_view json_text);
  void Value(const nlohmann::json& j) { Raw(j.dump()); }

  // Key + value in one call, for the common cases.
  void Field(std::string_view key, std::string_view s) { Key(key), String(s); }
  void Field(std::string_view key, const char* s) { Key(key), String(s); }
  void Field(std::string_view key, const std::string& s) { Key(key), String(s); }
  void Field(std::string_view key, bool v) { Key(key), Bool(v); }
  void Field(std::string_view key, double v) { Key(key), Double(v); }
  template <typename I, std::enable_if_t<std::is_integral_v<I> && !std::is_same_v<I, bool>, int> = 0>
  void Field(std::string_view key, I v) {
    Key(key);
    if constexpr (std::is_signed_v<I>) {
      Int(v);
    } else {
      UInt(v);
    }
  }
  void Field(std::string_view key, const std::vector<std::string>& list);

  const std::string& text() const { return out_; }
  // The text written so far; the writer is empty afterwards and can be reused.
  std::string Take();
  void Clear();
  // Room for `bytes` of text and `members` object members, to spare regrowth.
  void Reserve(size_t bytes, size_t members);

 private:
  struct Member {
    size_t begin;     // offset in out_ of the member's first byte (the key's quote)
    size_t key_size;  // of the key's text as written, between the quotes
    bool escaped;     // the key needed escapes: its text is not the key itself
  };
  struct Frame {
    bool object;
    bool sorted;  // Order::kSorted: members are not tracked
    bool empty = true;
    bool in_order = true;  // members so far arrived sorted, without repeats or escaped keys
    size_t first_member;   // index into members_
    size_t body;           // offset in out_ just after '{'
  };
  void BeforeValue();
  void SortMembers(const Frame& f);
  std::string_view KeyText(const Member& m) const { return std::string_view(out_).substr(m.begin + 1, m.key_size); }

  std::string out_;
  std::vector<Frame> frames_;
  std::vector<Member> members_;
  // SortMembers' scratch, kept for its capacity.
  std::string scratch_;
  std::string decoded_;
  std::vector<std::pair<size_t, size_t>> sort_keys_;
  std::vector<size_t> order_;
};

// Appends `s` to `out` as a JSON string literal, escaped as nlohmann does.
void AppendJsonString(std::string& out, std::string_view s);

}  // namespace cityloop
