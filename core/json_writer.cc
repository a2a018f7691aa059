#include "core/json_writer.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <numeric>

namespace cityloop {

void AppendJsonString(std::string& out, std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  out += '"';
  size_t run = 0;  // start of the bytes not yet copied
  for (size_t i = 0; i < s.size(); ++i) {
    const auto ch = static_cast<unsigned char>(s[i]);
    if (ch >= 0x20 && ch != '"' && ch != '\\') continue;
    out.append(s.data() + run, i - run);
    run = i + 1;
    switch (ch) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default: {
        const char esc[6] = {'\\', 'u', '0', '0', kHex[ch >> 4], kHex[ch & 0xF]};
        out.append(esc, sizeof esc);
      }
    }
  }
  out.append(s.data() + run, s.size() - run);
  out += '"';
}

void JsonWriter::BeforeValue() {
  if (frames_.empty()) return;
  Frame& f = frames_.back();
  if (f.object) return;  // Key() wrote the separator
  if (!f.empty) out_ += ',';
  f.empty = false;
}

void JsonWriter::BeginObject() {
  BeforeValue();
  out_ += '{';
  frames_.push_back(Frame{true, true, true, members_.size(), out_.size()});
}

void JsonWriter::BeginArray() {
  BeforeValue();
  out_ += '[';
  frames_.push_back(Frame{false, true, true, members_.size(), out_.size()});
}

void JsonWriter::Key(std::string_view key) {
  Frame& f = frames_.back();
  if (!f.empty) out_ += ',';
  f.empty = false;
  if (members_.size() > f.first_member && !(KeyOf(members_.back()) < key)) f.in_order = false;
  members_.push_back(Member{out_.size(), keys_.size(), key.size()});
  keys_.append(key);
  AppendJsonString(out_, key);
  out_ += ':';
}

void JsonWriter::EndObject() {
  const Frame f = frames_.back();
  if (!f.in_order) SortMembers(f);
  out_ += '}';
  if (members_.size() > f.first_member) keys_.resize(members_[f.first_member].key_offset);
  members_.resize(f.first_member);
  frames_.pop_back();
}

void JsonWriter::EndArray() {
  out_ += ']';
  frames_.pop_back();
}

// Rewrites the open object's members in key order, keeping only the last
// member of each key.
void JsonWriter::SortMembers(const Frame& f) {
  const size_t n = members_.size() - f.first_member;
  const Member* m = members_.data() + f.first_member;
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return KeyOf(m[a]) < KeyOf(m[b]); });
  scratch_.clear();
  for (size_t k = 0; k < n; ++k) {
    const size_t i = order[k];
    if (k + 1 < n && KeyOf(m[order[k + 1]]) == KeyOf(m[i])) continue;  // a later one replaces it
    const size_t end = i + 1 < n ? m[i + 1].begin - 1 : out_.size();  // -1: the comma before the next
    if (!scratch_.empty()) scratch_ += ',';
    scratch_.append(out_, m[i].begin, end - m[i].begin);
  }
  out_.replace(f.body, out_.size() - f.body, scratch_);
}

void JsonWriter::String(std::string_view s) {
  BeforeValue();
  AppendJsonString(out_, s);
}

void JsonWriter::Int(int64_t v) {
  BeforeValue();
  char buf[24];
  out_.append(buf, std::to_chars(buf, buf + sizeof buf, v).ptr);
}

void JsonWriter::UInt(uint64_t v) {
  BeforeValue();
  char buf[24];
  out_.append(buf, std::to_chars(buf, buf + sizeof buf, v).ptr);
}

void JsonWriter::Double(double v) {
  BeforeValue();
  if (!std::isfinite(v)) {
    out_ += "null";  // as nlohmann dumps NaN and infinities
    return;
  }
  // nlohmann's own formatter (Grisu2, shortest round trip, "1.0" for whole
  // numbers), so the text matches dump() byte for byte.
  std::array<char, 64> buf;
  char* end = nlohmann::detail::to_chars(buf.data(), buf.data() + buf.size(), v);
  out_.append(buf.data(), end);
}

void JsonWriter::Bool(bool v) {
  BeforeValue();
  out_ += v ? "true" : "false";
}

void JsonWriter::Null() {
  BeforeValue();
  out_ += "null";
}

void JsonWriter::Raw(std::string_view json_text) {
  BeforeValue();
  out_.append(json_text);
}

void JsonWriter::Field(std::string_view key, const std::vector<std::string>& list) {
  Key(key);
  BeginArray();
  for (const std::string& s : list) String(s);
  EndArray();
}

std::string JsonWriter::Take() {
  std::string text(out_);  // a copy of exactly its size; out_ keeps its capacity for the next
  Clear();
  return text;
}

void JsonWriter::Clear() {
  out_.clear();
  frames_.clear();
  members_.clear();
  keys_.clear();
}

}  // namespace cityloop
