#include "core/json_writer.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>

namespace cityloop {

namespace {

// Bytes a JSON string cannot hold as they are: control characters, '"' and '\\'.
constexpr std::array<bool, 256> kMustEscape = [] {
  std::array<bool, 256> t{};
  for (int c = 0; c < 0x20; ++c) t[c] = true;
  t['"'] = t['\\'] = true;
  return t;
}();

bool MustEscape(char ch) { return kMustEscape[static_cast<unsigned char>(ch)]; }

// Byte order, as std::string compares; inline, as keys are short (memcmp's
// call cost was a visible share of writing).
bool KeyLess(std::string_view a, std::string_view b) {
  const size_t n = std::min(a.size(), b.size());
  for (size_t i = 0; i < n; ++i) {
    if (a[i] != b[i]) return static_cast<unsigned char>(a[i]) < static_cast<unsigned char>(b[i]);
  }
  return a.size() < b.size();
}

bool Plain(std::string_view s) { return std::none_of(s.begin(), s.end(), MustEscape); }

// pre + s + post in one resize: single-character appends are out-of-line
// calls, and they were a visible share of writing.
void AppendWrapped(std::string& out, std::string_view pre, std::string_view s, std::string_view post) {
  const size_t at = out.size();
  out.resize(at + pre.size() + s.size() + post.size());
  char* p = out.data() + at;
  p = std::copy(pre.begin(), pre.end(), p);
  p = std::copy(s.begin(), s.end(), p);
  std::copy(post.begin(), post.end(), p);
}

}  // namespace

void AppendJsonString(std::string& out, std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  size_t i = 0;
  while (i < s.size() && !MustEscape(s[i])) ++i;
  if (i == s.size()) {  // nearly always: nothing to escape
    AppendWrapped(out, "\"", s, "\"");
    return;
  }
  out += '"';
  out.append(s.data(), i);
  size_t run = i;  // start of the bytes not yet copied
  for (; i < s.size(); ++i) {
    const auto ch = static_cast<unsigned char>(s[i]);
    if (!kMustEscape[ch]) continue;
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

void JsonWriter::BeginObject(Order order) {
  BeforeValue();
  out_ += '{';
  frames_.push_back(Frame{true, order == Order::kSorted, true, true, members_.size(), out_.size()});
}

void JsonWriter::BeginArray() {
  BeforeValue();
  out_ += '[';
  frames_.push_back(Frame{false, false, true, true, members_.size(), out_.size()});
}

void JsonWriter::Key(std::string_view key) {
  Frame& f = frames_.back();
  const bool first = f.empty;
  f.empty = false;
  const bool plain = Plain(key);
  if (!f.sorted && !first) {
    const Member& prev = members_.back();
    // An escaped key sends the object down the sorting path, which decodes keys.
    if (!plain || prev.escaped || !KeyLess(KeyText(prev), key)) f.in_order = false;
  }
  const size_t begin = out_.size() + (first ? 0 : 1);  // the key's quote
  if (plain) {  // nearly always: ,"key": in one step
    AppendWrapped(out_, first ? "\"" : ",\"", key, "\":");
  } else {
    if (!first) out_ += ',';
    AppendJsonString(out_, key);
    out_ += ':';
  }
  if (!f.sorted) members_.push_back(Member{begin, out_.size() - begin - 3, !plain});
}

void JsonWriter::EndObject() {
  const Frame f = frames_.back();
  if (!f.in_order) SortMembers(f);
  out_ += '}';
  members_.resize(f.first_member);
  frames_.pop_back();
}

void JsonWriter::EndArray() {
  out_ += ']';
  frames_.pop_back();
}

namespace {

// The key as given to Key(), from its text as written (our own escapes only).
void DecodeKey(std::string_view text, std::string& out) {
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '\\') {
      out += text[i];
      continue;
    }
    const char e = text[++i];
    switch (e) {
      case 'b': out += '\b'; break;
      case 'f': out += '\f'; break;
      case 'n': out += '\n'; break;
      case 'r': out += '\r'; break;
      case 't': out += '\t'; break;
      case 'u': out += static_cast<char>(std::stoi(std::string(text.substr(i + 3, 2)), nullptr, 16)), i += 4; break;
      default: out += e;  // '"' and '\\'
    }
  }
}

}  // namespace

// Rewrites the open object's members in key order, keeping only the last
// member of each key. Objects are small and mostly in order already, so an
// insertion sort (stable).
void JsonWriter::SortMembers(const Frame& f) {
  const size_t n = members_.size() - f.first_member;
  const Member* m = members_.data() + f.first_member;
  decoded_.clear();
  sort_keys_.resize(n);
  for (size_t i = 0; i < n; ++i) {
    if (!m[i].escaped) continue;
    const size_t at = decoded_.size();
    DecodeKey(KeyText(m[i]), decoded_);
    sort_keys_[i] = {at, decoded_.size() - at};
  }
  auto key = [&](size_t i) -> std::string_view {
    if (!m[i].escaped) return KeyText(m[i]);
    return std::string_view(decoded_).substr(sort_keys_[i].first, sort_keys_[i].second);
  };
  order_.resize(n);
  for (size_t i = 0; i < n; ++i) {
    size_t j = i;
    for (; j > 0 && KeyLess(key(i), key(order_[j - 1])); --j) order_[j] = order_[j - 1];
    order_[j] = i;
  }
  scratch_.clear();
  for (size_t k = 0; k < n; ++k) {
    const size_t i = order_[k];
    if (k + 1 < n && key(order_[k + 1]) == key(i)) continue;  // a later one replaces it
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

void JsonWriter::Reserve(size_t bytes, size_t members) {
  out_.reserve(bytes);
  members_.reserve(members);
}

void JsonWriter::Clear() {
  out_.clear();
  frames_.clear();
  members_.clear();
}

}  // namespace cityloop
