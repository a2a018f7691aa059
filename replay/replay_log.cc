#include "replay/replay_log.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <type_traits>

#include "replay/crc32c.h"
#include "replay/text_file.h"

namespace cityloop::replay {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr std::string_view kSegmentMagic = "CLOGSEG1";
constexpr uint32_t kFrameMagic = 0x43524C43;  // "CLRC" little-endian
constexpr size_t kFrameHeader = 12;
constexpr uint32_t kMaxPayload = 256u << 20;
constexpr uint64_t kMarkEveryBytes = 1u << 20;
constexpr const char* kManifest = "manifest.json";
constexpr int kFormatVersion = 1;

// A field of a JSON file read back from disk (manifest, segment header,
// index), or fallback when it is missing or not of T's type or range: a
// damaged file is damage to report, not an exception (json::value throws).
template <typename T>
T JsonField(const json& j, const char* key, T fallback) {
  if (!j.is_object()) return fallback;
  const auto it = j.find(key);
  if (it == j.end()) return fallback;
  if constexpr (std::is_same_v<T, std::string>) {
    return it->is_string() ? it->template get<std::string>() : fallback;
  } else {
    static_assert(std::is_integral_v<T>);
    constexpr uint64_t kMax = static_cast<uint64_t>(std::numeric_limits<T>::max());
    if (it->is_number_unsigned()) {
      const auto v = it->template get<uint64_t>();
      return v <= kMax ? static_cast<T>(v) : fallback;
    }
    if (it->is_number_integer()) {
      const auto v = it->template get<int64_t>();
      const bool fits =
          v < 0 ? v >= static_cast<int64_t>(std::numeric_limits<T>::min()) : static_cast<uint64_t>(v) <= kMax;
      return fits ? static_cast<T>(v) : fallback;
    }
    return fallback;
  }
}

// The offset after o; a damaged record or index may hold INT64_MAX.
int64_t OffsetAfter(int64_t o) { return o < std::numeric_limits<int64_t>::max() ? o + 1 : o; }

// ---- little-endian encoding ----

template <typename T>
void Put(std::string* out, T v) {
  char b[sizeof(T)];
  std::memcpy(b, &v, sizeof(T));  // little-endian hosts
  out->append(b, sizeof(T));
}

void PutBytes(std::string* out, std::string_view s) {
  Put<uint32_t>(out, static_cast<uint32_t>(s.size()));
  out->append(s);
}

// Reads fields off a payload; any read past the end marks it bad.
class Cursor {
 public:
  explicit Cursor(std::string_view s) : s_(s) {}
  template <typename T>
  T Get() {
    T v{};
    if (s_.size() - pos_ < sizeof(T)) {
      bad_ = true;
      pos_ = s_.size();
      return v;
    }
    std::memcpy(&v, s_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }
  std::string_view Bytes() {
    const uint32_t n = Get<uint32_t>();
    if (bad_ || s_.size() - pos_ < n) {
      bad_ = true;
      pos_ = s_.size();
      return {};
    }
    std::string_view v = s_.substr(pos_, n);
    pos_ += n;
    return v;
  }
  std::string_view Rest() {
    std::string_view v = s_.substr(pos_);
    pos_ = s_.size();
    return v;
  }
  bool bad() const { return bad_; }

 private:
  std::string_view s_;
  size_t pos_ = 0;
  bool bad_ = false;
};

void AppendFrame(std::string* out, std::string_view payload) {
  Put<uint32_t>(out, kFrameMagic);
  Put<uint32_t>(out, static_cast<uint32_t>(payload.size()));
  Put<uint32_t>(out, Crc32c(payload));
  out->append(payload);
}

void EncodePayload(const LogRecord& r, const ingest::Message& m, std::string* out) {
  out->clear();
  Put<uint8_t>(out, static_cast<uint8_t>(r.kind));
  Put<uint64_t>(out, r.seq);
  Put<int64_t>(out, m.offset);
  Put<int64_t>(out, m.timestamp_ms);
  Put<int64_t>(out, r.ingest_ms);
  PutBytes(out, m.key);
  Put<uint16_t>(out, static_cast<uint16_t>(std::min<size_t>(m.headers.size(), 0xFFFF)));
  for (size_t i = 0; i < m.headers.size() && i < 0xFFFF; ++i) {
    PutBytes(out, m.headers[i].first);
    PutBytes(out, m.headers[i].second);
  }
  out->append(m.value);
}

bool DecodePayload(std::string_view payload, LogRecord* r) {
  Cursor c(payload);
  const auto kind = c.Get<uint8_t>();
  if (kind != static_cast<uint8_t>(RecordKind::kMessage) && kind != static_cast<uint8_t>(RecordKind::kClock)) {
    return false;
  }
  r->kind = static_cast<RecordKind>(kind);
  r->seq = c.Get<uint64_t>();
  r->message.offset = c.Get<int64_t>();
  r->message.timestamp_ms = c.Get<int64_t>();
  r->ingest_ms = c.Get<int64_t>();
  r->message.key.assign(c.Bytes());
  const auto headers = c.Get<uint16_t>();
  r->message.headers.clear();
  for (uint16_t i = 0; i < headers && !c.bad(); ++i) {
    std::string_view name = c.Bytes();
    std::string_view value = c.Bytes();
    r->message.headers.emplace_back(std::string(name), std::string(value));
  }
  if (c.bad()) return false;
  r->message.value.assign(c.Rest());
  return true;
}

enum class Frame { kOk, kEnd, kBad };

// Whether a valid frame starts at pos; sets its payload and the position after it.
Frame ParseFrame(std::string_view data, size_t pos, std::string_view* payload, size_t* next, std::string* why) {
  if (pos >= data.size()) return Frame::kEnd;
  if (data.size() - pos < kFrameHeader) {
    *why = "truncated frame header";
    return Frame::kBad;
  }
  uint32_t magic, len, crc;
  std::memcpy(&magic, data.data() + pos, 4);
  std::memcpy(&len, data.data() + pos + 4, 4);
  std::memcpy(&crc, data.data() + pos + 8, 4);
  if (magic != kFrameMagic) {
    *why = "no record starts here";
    return Frame::kBad;
  }
  if (len > kMaxPayload) {
    *why = "record length " + std::to_string(len) + " is out of range";
    return Frame::kBad;
  }
  if (data.size() - pos - kFrameHeader < len) {
    *why = "truncated record (" + std::to_string(len) + " bytes announced, " +
           std::to_string(data.size() - pos - kFrameHeader) + " present)";
    return Frame::kBad;
  }
  std::string_view p = data.substr(pos + kFrameHeader, len);
  if (Crc32c(p) != crc) {
    *why = "checksum mismatch";
    return Frame::kBad;
  }
  *payload = p;
  *next = pos + kFrameHeader + len;
  return Frame::kOk;
}

// The next position after pos where a valid frame starts, or data.size().
size_t Resync(std::string_view data, size_t pos) {
  char magic[4];
  std::memcpy(magic, &kFrameMagic, 4);
  for (size_t at = pos + 1; at + kFrameHeader <= data.size(); ++at) {
    const void* hit = memmem(data.data() + at, data.size() - at, magic, 4);
    if (!hit) break;
    at = static_cast<const char*>(hit) - data.data();
    std::string_view payload;
    size_t next;
    std::string why;
    if (ParseFrame(data, at, &payload, &next, &why) == Frame::kOk) return at;
  }
  return data.size();
}

// A read-only mapping of a whole file.
class MappedFile {
 public:
  static Result<std::unique_ptr<MappedFile>> Open(const std::string& path) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return Status::NotFound(path + ": " + std::strerror(errno));
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
      ::close(fd);
      return Status::Internal(path + ": " + std::strerror(errno));
    }
    auto f = std::unique_ptr<MappedFile>(new MappedFile);
    f->size_ = static_cast<size_t>(st.st_size);
    if (f->size_ > 0) {
      void* p = ::mmap(nullptr, f->size_, PROT_READ, MAP_PRIVATE, fd, 0);
      if (p == MAP_FAILED) {
        ::close(fd);
        return Status::Internal(path + ": mmap: " + std::strerror(errno));
      }
      ::madvise(p, f->size_, MADV_SEQUENTIAL);
      f->data_ = static_cast<const char*>(p);
    }
    ::close(fd);
    return f;
  }
  ~MappedFile() {
    if (data_) ::munmap(const_cast<char*>(data_), size_);
  }
  std::string_view data() const { return {data_, size_}; }

 private:
  MappedFile() = default;
  const char* data_ = nullptr;
  size_t size_ = 0;
};

std::string SegmentName(uint32_t number, const char* ext) {
  char name[32];
  std::snprintf(name, sizeof name, "%08u.%s", number, ext);
  return name;
}

// Segment numbers found in a stream directory, ascending.
std::vector<uint32_t> SegmentNumbers(const std::string& dir) {
  std::vector<uint32_t> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    if (name.size() != 12 || name.substr(8) != ".seg") continue;
    if (name.find_first_not_of("0123456789") != 8) continue;
    out.push_back(static_cast<uint32_t>(std::stoul(name.substr(0, 8))));
  }
  std::sort(out.begin(), out.end());
  return out;
}

// What a segment holds, for its index.
struct SegmentStats {
  uint64_t records = 0;
  uint64_t first_seq = 0, last_seq = 0;
  int64_t first_offset = -1, last_offset = -1;
  int64_t min_ts = std::numeric_limits<int64_t>::max();
  int64_t max_ts = std::numeric_limits<int64_t>::min();
  uint64_t bytes = 0;
  uint64_t next_mark = 0;
  std::vector<std::pair<uint64_t, int64_t>> marks;  // (frame position, max timestamp before it)

  // A record framed at pos.
  void Add(const LogRecord& r, uint64_t pos) {
    if (pos >= next_mark) {
      marks.emplace_back(pos, max_ts);
      next_mark = pos + kMarkEveryBytes;
    }
    if (records++ == 0) {
      first_seq = r.seq;
      first_offset = r.message.offset;
    }
    last_seq = r.seq;
    last_offset = r.message.offset;
    const int64_t ts = r.kind == RecordKind::kClock ? r.ingest_ms : r.message.timestamp_ms;
    min_ts = std::min(min_ts, ts);
    max_ts = std::max(max_ts, ts);
  }
  json ToJson() const {
    json m = json::array();
    for (const auto& [pos, ts] : marks) m.push_back({pos, ts});
    return json{{"records", records},   {"first_seq", first_seq}, {"last_seq", last_seq},
                {"first_offset", first_offset}, {"last_offset", last_offset}, {"min_ts", min_ts},
                {"max_ts", max_ts},     {"bytes", bytes},         {"marks", m}};
  }
};

std::string SegmentHeader(const storage::TopicPartition& tp, uint32_t number) {
  std::string out(kSegmentMagic);
  AppendFrame(&out, json{{"topic", tp.topic}, {"partition", tp.partition}, {"segment", number},
                         {"version", kFormatVersion}}
                        .dump());
  return out;
}

// Checks a segment's magic and header frame; returns the position of its first record.
Result<size_t> CheckSegmentHeader(std::string_view data, const storage::TopicPartition& tp) {
  if (data.substr(0, kSegmentMagic.size()) != kSegmentMagic) return Status::DataLoss("not a cityloop log segment");
  std::string_view payload;
  size_t next = 0;
  std::string why;
  if (ParseFrame(data, kSegmentMagic.size(), &payload, &next, &why) != Frame::kOk) {
    return Status::DataLoss("segment header: " + why);
  }
  json h = json::parse(payload, nullptr, false);
  if (!h.is_object() || JsonField<std::string>(h, "topic", "") != tp.topic ||
      JsonField<int64_t>(h, "partition", -1) != tp.partition) {
    return Status::DataLoss("segment header names another stream: " + std::string(payload));
  }
  return next;
}

// Walks the records of a mapped segment from pos, skipping damage. fn(record,
// frame position); problems are reported to bad(position, what).
template <typename OnRecord, typename OnBad>
size_t WalkFrames(std::string_view data, size_t pos, LogRecord* scratch, OnRecord&& fn, OnBad&& bad) {
  size_t end_of_valid = pos;
  while (true) {
    std::string_view payload;
    size_t next = 0;
    std::string why;
    const Frame f = ParseFrame(data, pos, &payload, &next, &why);
    if (f == Frame::kEnd) break;
    if (f == Frame::kBad) {
      const size_t resume = Resync(data, pos);
      if (resume >= data.size()) {
        bad(pos, "torn tail: " + why + "; " + std::to_string(data.size() - pos) + " bytes dropped");
        break;
      }
      bad(pos, why + "; skipped " + std::to_string(resume - pos) + " bytes to the next valid record");
      pos = resume;
      continue;
    }
    if (!DecodePayload(payload, scratch)) {
      bad(pos, "malformed record payload; skipped");
    } else if (!fn(*scratch, pos)) {
      return next;
    }
    pos = end_of_valid = next;
  }
  return end_of_valid;
}

Result<json> ReadManifest(const std::string& dir) {
  auto text = ReadTextFile(dir + "/" + kManifest);
  if (!text.ok()) return text.status();
  json m = json::parse(*text, nullptr, false);
  if (!m.is_object() || JsonField<std::string>(m, "format", "") != "cityloop-replay-log") {
    return Status::DataLoss(dir + "/" + kManifest + ": not a cityloop replay log manifest");
  }
  if (JsonField<int64_t>(m, "version", 0) > kFormatVersion) {
    return Status::FailedPrecondition(dir + ": log format version " +
                                      std::to_string(JsonField<int64_t>(m, "version", 0)) +
                                      " is newer than this build reads (" + std::to_string(kFormatVersion) + ")");
  }
  return m;
}

// Every stream directory <topic>/<partition> of a log.
std::vector<storage::TopicPartition> ListStreams(const std::string& dir) {
  std::vector<storage::TopicPartition> out;
  std::error_code ec;
  for (const auto& t : fs::directory_iterator(dir, ec)) {
    if (!t.is_directory()) continue;
    for (const auto& p : fs::directory_iterator(t.path(), ec)) {
      const std::string name = p.path().filename().string();
      int32_t partition = -1;
      const auto [end, err] = std::from_chars(name.data(), name.data() + name.size(), partition);
      // Only a partition number's directory: not "tmp", "-1" or beyond int32.
      if (!p.is_directory() || err != std::errc() || end != name.data() + name.size() || partition < 0) continue;
      out.push_back({t.path().filename().string(), partition});
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::string StreamDir(const std::string& dir, const storage::TopicPartition& tp) {
  return dir + "/" + tp.topic + "/" + std::to_string(tp.partition);
}

}  // namespace

std::string LogProblem::ToString() const {
  return position < 0 ? file + ": " + what : file + " at byte " + std::to_string(position) + ": " + what;
}

Result<std::string> LogWriterOf(const std::string& dir) {
  auto m = ReadManifest(dir);
  if (!m.ok()) return m.status();
  return JsonField<std::string>(*m, "writer", "");
}

bool TimeOrderBefore(const LogRecord& a, const LogRecord& b) {
  const ingest::Message& x = a.message;
  const ingest::Message& y = b.message;
  if (x.timestamp_ms != y.timestamp_ms) return x.timestamp_ms < y.timestamp_ms;
  if (int c = x.topic.compare(y.topic)) return c < 0;
  if (int c = x.key.compare(y.key)) return c < 0;
  // One key lives in one partition, in offset order; keyless records are
  // spread over partitions, so only their content orders them the same way
  // whatever the partition count.
  if (x.key.empty()) {
    if (int c = x.value.compare(y.value)) return c < 0;
  }
  if (x.offset != y.offset) return x.offset < y.offset;
  return x.partition < y.partition;
}

// ---------------------------------------------------------------- writer

struct LogWriter::Stream {
  storage::TopicPartition tp;
  std::string dir;
  uint32_t segment = 0;       // the open (or last closed) segment
  uint32_t next_segment = 0;  // the number the next segment gets
  std::FILE* file = nullptr;
  SegmentStats stats;
  std::optional<int64_t> next_offset;
  std::vector<char> buffer = std::vector<char>(1 << 20);

  Status OpenSegment() {
    const uint32_t number = next_segment++;
    segment = number;
    stats = SegmentStats{};
    const std::string path = dir + "/" + SegmentName(number, "seg");
    file = std::fopen(path.c_str(), "wbx");
    if (!file) return Status::Internal("cannot create " + path + ": " + std::strerror(errno));
    std::setvbuf(file, buffer.data(), _IOFBF, buffer.size());
    const std::string header = SegmentHeader(tp, number);
    if (std::fwrite(header.data(), 1, header.size(), file) != header.size()) {
      return Status::Internal("cannot write " + path);
    }
    stats.bytes = header.size();
    return Status::Ok();
  }
  Status CloseSegment() {
    if (!file) return Status::Ok();
    const bool ok = std::fclose(file) == 0;
    file = nullptr;
    if (!ok) return Status::Internal("cannot close a segment of " + dir);
    return WriteTextFile(dir + "/" + SegmentName(segment, "idx"), stats.ToJson().dump());
  }
};

Result<std::unique_ptr<LogWriter>> LogWriter::Open(const std::string& dir, const LogWriterOptions& options) {
  std::unique_ptr<LogWriter> w(new LogWriter);
  w->dir_ = dir;
  w->options_ = options;
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return Status::Internal("cannot create " + dir + ": " + ec.message());
  if (fs::exists(dir + "/" + kManifest)) {
    auto m = ReadManifest(dir);
    if (!m.ok()) return m.status();
    if (JsonField<std::string>(*m, "writer", "") != options.writer) {
      return Status::FailedPrecondition(dir + " holds a log written by '" + JsonField<std::string>(*m, "writer", "") +
                                        "'; record into a new directory");
    }
  } else {
    CL_RETURN_IF_ERROR(WriteTextFile(
        dir + "/" + kManifest, json{{"format", "cityloop-replay-log"}, {"version", kFormatVersion},
                                    {"writer", options.writer}}
                                   .dump(2)));
  }
  // Continue each stream after its last valid record, in a new segment.
  for (const storage::TopicPartition& tp : ListStreams(dir)) {
    auto s = std::make_unique<Stream>();
    s->tp = tp;
    s->dir = StreamDir(dir, tp);
    const std::vector<uint32_t> numbers = SegmentNumbers(s->dir);
    if (numbers.empty()) continue;
    const uint32_t last = numbers.back();
    const std::string path = s->dir + "/" + SegmentName(last, "seg");
    auto mapped = MappedFile::Open(path);
    if (!mapped.ok()) return mapped.status();
    auto first = CheckSegmentHeader((*mapped)->data(), tp);
    SegmentStats stats;
    stats.bytes = 0;
    size_t valid_end = 0;
    if (first.ok()) {
      LogRecord scratch;
      valid_end = WalkFrames(
          (*mapped)->data(), *first, &scratch,
          [&](const LogRecord& r, size_t pos) {
            stats.Add(r, pos);
            w->next_seq_ = std::max(w->next_seq_, r.seq + 1);
            return true;
          },
          [&](size_t pos, const std::string& what) { w->repairs_.push_back({path, static_cast<int64_t>(pos), what}); });
    } else {
      w->repairs_.push_back({path, -1, first.status().message() + "; emptied"});
    }
    // Everything before the last segment is closed; its seqs are lower.
    for (uint32_t n : numbers) {
      if (n == last) continue;
      auto idx = ReadTextFile(s->dir + "/" + SegmentName(n, "idx"));
      if (!idx.ok()) continue;
      json j = json::parse(*idx, nullptr, false);
      if (j.is_object()) w->next_seq_ = std::max<uint64_t>(w->next_seq_, JsonField<uint64_t>(j, "last_seq", 0) + 1);
    }
    mapped->reset();
    if (!first.ok()) {
      // No valid header (a crash right after creating it): the number is reused.
      fs::remove(path, ec);
      s->next_segment = last;
      w->streams_.emplace(tp, std::move(s));
      continue;
    }
    if (valid_end < fs::file_size(path)) fs::resize_file(path, valid_end);
    stats.bytes = valid_end;
    if (stats.records > 0) s->next_offset = OffsetAfter(stats.last_offset);
    else if (!numbers.empty()) {
      // The newest segment was empty: the stream's offsets are in the previous index.
      for (auto it = numbers.rbegin(); it != numbers.rend(); ++it) {
        auto idx = ReadTextFile(s->dir + "/" + SegmentName(*it, "idx"));
        json j = idx.ok() ? json::parse(*idx, nullptr, false) : json();
        if (j.is_object() && JsonField<int64_t>(j, "records", 0) > 0) {
          s->next_offset = OffsetAfter(JsonField<int64_t>(j, "last_offset", -1));
          break;
        }
      }
    }
    CL_RETURN_IF_ERROR(WriteTextFile(s->dir + "/" + SegmentName(last, "idx"), stats.ToJson().dump()));
    s->segment = last;
    s->next_segment = last + 1;
    w->streams_.emplace(tp, std::move(s));
  }
  return w;
}

LogWriter::~LogWriter() {
  if (!closed_) (void)Close();
}

Result<LogWriter::Stream*> LogWriter::StreamFor(const std::string& topic, int32_t partition) {
  storage::TopicPartition tp{topic, partition};
  auto it = streams_.find(tp);
  if (it == streams_.end()) {
    auto s = std::make_unique<Stream>();
    s->tp = tp;
    s->dir = StreamDir(dir_, tp);
    std::error_code ec;
    fs::create_directories(s->dir, ec);
    if (ec) return Status::Internal("cannot create " + s->dir + ": " + ec.message());
    CL_RETURN_IF_ERROR(s->OpenSegment());
    it = streams_.emplace(tp, std::move(s)).first;
  } else if (!it->second->file) {
    CL_RETURN_IF_ERROR(it->second->OpenSegment());
  }
  return it->second.get();
}

Status LogWriter::Write(Stream& s, const LogRecord& r, const ingest::Message& m) {
  EncodePayload(r, m, &scratch_);
  if (scratch_.size() > kMaxPayload) {
    return Status::InvalidArgument("record of " + std::to_string(scratch_.size()) + " bytes exceeds the log's limit");
  }
  uint32_t header[3] = {kFrameMagic, static_cast<uint32_t>(scratch_.size()), Crc32c(scratch_)};
  const uint64_t pos = s.stats.bytes;
  if (std::fwrite(header, 1, kFrameHeader, s.file) != kFrameHeader ||
      std::fwrite(scratch_.data(), 1, scratch_.size(), s.file) != scratch_.size()) {
    return Status::Internal("cannot append to " + s.dir);
  }
  LogRecord meta = r;
  meta.message.offset = m.offset;
  meta.message.timestamp_ms = m.timestamp_ms;
  s.stats.Add(meta, pos);
  s.stats.bytes += kFrameHeader + scratch_.size();
  if (r.kind == RecordKind::kMessage) s.next_offset = m.offset + 1;
  if (s.stats.bytes >= options_.segment_bytes) CL_RETURN_IF_ERROR(s.CloseSegment());
  return Status::Ok();
}

Status LogWriter::Append(const ingest::Message& m, int64_t ingest_ms) {
  if (closed_) return Status::FailedPrecondition("log writer is closed");
  if (m.topic.empty() || m.topic.find_first_of("/@") != std::string::npos || m.topic == "." || m.topic == "..") {
    return Status::InvalidArgument("cannot record topic '" + m.topic + "'");
  }
  auto s = StreamFor(m.topic, m.partition);
  if (!s.ok()) return s.status();
  LogRecord r;
  r.kind = RecordKind::kMessage;
  r.seq = next_seq_++;
  r.ingest_ms = ingest_ms;
  return Write(**s, r, m);
}

Status LogWriter::AppendClock(int64_t now_ms) {
  if (closed_) return Status::FailedPrecondition("log writer is closed");
  auto s = StreamFor(kClockStream, 0);
  if (!s.ok()) return s.status();
  LogRecord r;
  r.kind = RecordKind::kClock;
  r.seq = next_seq_++;
  r.ingest_ms = now_ms;
  ingest::Message none;
  none.timestamp_ms = now_ms;
  return Write(**s, r, none);
}

Status LogWriter::Flush() {
  for (auto& [tp, s] : streams_) {
    if (s->file && std::fflush(s->file) != 0) return Status::Internal("cannot flush " + s->dir);
  }
  return Status::Ok();
}

std::optional<int64_t> LogWriter::NextOffset(const std::string& topic, int32_t partition) const {
  auto it = streams_.find({topic, partition});
  return it == streams_.end() ? std::nullopt : it->second->next_offset;
}

Status LogWriter::Close() {
  if (closed_) return Status::Ok();
  closed_ = true;
  Status first;
  for (auto& [tp, s] : streams_) {
    Status st = s->CloseSegment();
    if (first.ok() && !st.ok()) first = st;
  }
  return first;
}

// ---------------------------------------------------------------- reader

class LogReader::StreamReader {
 public:
  StreamReader(std::string dir, storage::TopicPartition tp, const LogReadOptions& options,
               std::vector<LogProblem>* problems)
      : dir_(std::move(dir)), tp_(std::move(tp)), options_(options), problems_(problems) {
    const std::vector<uint32_t> numbers = SegmentNumbers(dir_);
    for (size_t i = 0; i < numbers.size(); ++i) {
      if (i > 0 && numbers[i] != numbers[i - 1] + 1) {
        problems_->push_back({dir_, -1, "segments " + SegmentName(numbers[i - 1] + 1, "seg") + " to " +
                                            SegmentName(numbers[i] - 1, "seg") + " are missing"});
      } else if (i == 0 && numbers[0] != 0) {
        problems_->push_back({dir_, -1, "segments before " + SegmentName(numbers[0], "seg") + " are missing"});
      }
      Segment seg{numbers[i], json()};
      auto idx = ReadTextFile(dir_ + "/" + SegmentName(numbers[i], "idx"));
      if (idx.ok()) seg.index = json::parse(*idx, nullptr, false);
      segments_.push_back(std::move(seg));
    }
  }

  const storage::TopicPartition& tp() const { return tp_; }
  bool is_clock() const { return tp_.topic == kClockStream; }

  // Records and bytes by the indexes, estimated for unindexed segments.
  std::pair<uint64_t, uint64_t> Size() const {
    uint64_t records = 0, bytes = 0, indexed_records = 0, indexed_bytes = 0;
    std::vector<uint64_t> unindexed;
    for (const Segment& s : segments_) {
      std::error_code ec;
      const uint64_t size = fs::file_size(dir_ + "/" + SegmentName(s.number, "seg"), ec);
      bytes += ec ? 0 : size;
      if (s.index.is_object()) {
        indexed_records += JsonField<uint64_t>(s.index, "records", 0);
        indexed_bytes += JsonField<uint64_t>(s.index, "bytes", 0);
      } else {
        unindexed.push_back(ec ? 0 : size);
      }
    }
    records = indexed_records;
    // A record takes more than a byte; an index saying otherwise is damaged
    // (and a tiny divisor would overflow the estimate's conversion).
    const double per_record =
        indexed_records && indexed_bytes >= indexed_records ? double(indexed_bytes) / double(indexed_records) : 200.0;
    for (uint64_t b : unindexed) records += static_cast<uint64_t>(double(b) / per_record);
    return {records, bytes};
  }

  // Makes head() the stream's next record in the read order; false at its end.
  bool Fill() {
    if (options_.order == LogOrder::kLog) {
      if (!have_head_) have_head_ = ReadRaw(&head_);
      return have_head_;
    }
    // kTime: hold records until the newest read is a window past the oldest.
    while (!exhausted_ && (buffer_.empty() || newest_ts_ - buffer_.front().message.timestamp_ms <
                                                  options_.reorder_window_ms)) {
      LogRecord r;
      if (!ReadRaw(&r)) {
        exhausted_ = true;
        break;
      }
      newest_ts_ = std::max(newest_ts_, r.message.timestamp_ms);
      buffer_.push_back(std::move(r));
      std::push_heap(buffer_.begin(), buffer_.end(), After);
    }
    return !buffer_.empty();
  }
  LogRecord& head() { return options_.order == LogOrder::kLog ? head_ : buffer_.front(); }
  void Take(LogRecord* out) {
    if (options_.order == LogOrder::kLog) {
      *out = std::move(head_);
      have_head_ = false;
      return;
    }
    std::pop_heap(buffer_.begin(), buffer_.end(), After);
    *out = std::move(buffer_.back());
    buffer_.pop_back();
  }
  uint64_t bytes_read() const { return bytes_read_; }

 private:
  struct Segment {
    uint32_t number = 0;
    json index;  // null when the segment has none (still being written, or crashed)
  };
  static bool After(const LogRecord& a, const LogRecord& b) { return TimeOrderBefore(b, a); }

  // Whether the index says a segment holds nothing in [from_ms, to_ms).
  bool OutsideRange(const Segment& s) const {
    if (!s.index.is_object() || JsonField<int64_t>(s.index, "records", 0) == 0) return false;
    return JsonField<int64_t>(s.index, "max_ts", 0) < options_.from_ms ||
           JsonField<int64_t>(s.index, "min_ts", 0) >= options_.to_ms;
  }

  // The first frame at or after which records may reach from_ms.
  size_t SeekPosition(const Segment& s, size_t first) const {
    if (!s.index.is_object() || options_.from_ms == std::numeric_limits<int64_t>::min()) return first;
    size_t pos = first;
    for (const json& m : s.index.value("marks", json::array())) {
      if (!m.is_array() || m.size() != 2 || !m[0].is_number_integer() || !m[1].is_number_integer()) break;
      if (m[1].get<int64_t>() >= options_.from_ms) break;
      pos = std::max(pos, m[0].get<size_t>());
    }
    return pos;
  }

  bool OpenNextSegment() {
    while (next_segment_ < segments_.size()) {
      const Segment& s = segments_[next_segment_++];
      if (OutsideRange(s)) continue;
      path_ = dir_ + "/" + SegmentName(s.number, "seg");
      auto mapped = MappedFile::Open(path_);
      if (!mapped.ok()) {
        problems_->push_back({path_, -1, mapped.status().message()});
        continue;
      }
      auto first = CheckSegmentHeader((*mapped)->data(), tp_);
      if (!first.ok()) {
        problems_->push_back({path_, 0, first.status().message() + "; segment skipped"});
        continue;
      }
      file_ = std::move(mapped).value();
      pos_ = SeekPosition(s, *first);
      return true;
    }
    return false;
  }

  bool ReadRaw(LogRecord* out) {
    while (true) {
      if (!file_ && !OpenNextSegment()) return false;
      bool got = false;
      const size_t before = pos_;
      pos_ = WalkFrames(
          file_->data(), pos_, out,
          [&](const LogRecord& r, size_t) {
            got = InRange(r);
            return !got;  // stop at the first record in range
          },
          [&](size_t at, const std::string& what) {
            problems_->push_back({path_, static_cast<int64_t>(at), what});
          });
      bytes_read_ += pos_ - before;
      if (got) {
        out->message.topic = tp_.topic;
        out->message.partition = tp_.partition;
        return true;
      }
      file_.reset();
    }
  }

  bool InRange(const LogRecord& r) const {
    if (r.kind == RecordKind::kClock) return true;
    return r.message.timestamp_ms >= options_.from_ms && r.message.timestamp_ms < options_.to_ms;
  }

  std::string dir_;
  storage::TopicPartition tp_;
  const LogReadOptions& options_;
  std::vector<LogProblem>* problems_;
  std::vector<Segment> segments_;
  size_t next_segment_ = 0;
  std::unique_ptr<MappedFile> file_;
  std::string path_;
  size_t pos_ = 0;
  uint64_t bytes_read_ = 0;
  LogRecord head_;
  bool have_head_ = false;
  std::vector<LogRecord> buffer_;  // kTime: a min-heap by time order
  int64_t newest_ts_ = std::numeric_limits<int64_t>::min();
  bool exhausted_ = false;
};

Result<std::unique_ptr<LogReader>> LogReader::Open(const std::string& dir, const LogReadOptions& options) {
  auto manifest = ReadManifest(dir);
  if (!manifest.ok()) return manifest.status();
  std::unique_ptr<LogReader> r(new LogReader);
  r->options_ = options;
  r->info_.writer = JsonField<std::string>(*manifest, "writer", "");
  for (const storage::TopicPartition& tp : ListStreams(dir)) {
    const bool clock = tp.topic == kClockStream;
    if (clock) r->info_.has_clock = true;
    if (clock && options.order == LogOrder::kTime) continue;
    if (!clock && !options.topics.empty() &&
        std::find(options.topics.begin(), options.topics.end(), tp.topic) == options.topics.end()) {
      continue;
    }
    auto s = std::make_unique<StreamReader>(StreamDir(dir, tp), tp, r->options_, &r->problems_);
    auto [records, bytes] = s->Size();
    r->info_.records += clock ? 0 : records;
    r->info_.bytes += bytes;
    if (!clock) r->info_.streams.push_back(tp);
    r->streams_.push_back(std::move(s));
  }
  return r;
}

LogReader::~LogReader() = default;

const std::vector<LogProblem>& LogReader::problems() const { return problems_; }

uint64_t LogReader::bytes_read() const {
  uint64_t n = 0;
  for (const auto& s : streams_) n += s->bytes_read();
  return n;
}

bool LogReader::Before(size_t a, size_t b) const {
  LogRecord& x = streams_[a]->head();
  LogRecord& y = streams_[b]->head();
  if (options_.order == LogOrder::kLog) return x.seq < y.seq;
  return TimeOrderBefore(x, y);
}

LogRecord* LogReader::Next() {
  // A heap of streams by their heads; the comparator is "comes out later".
  auto later = [this](size_t a, size_t b) { return Before(b, a); };
  if (!started_) {
    started_ = true;
    for (size_t i = 0; i < streams_.size(); ++i) {
      if (streams_[i]->Fill()) heap_.push_back(i);
    }
    std::make_heap(heap_.begin(), heap_.end(), later);
  }
  if (heap_.empty()) return nullptr;
  std::pop_heap(heap_.begin(), heap_.end(), later);
  const size_t s = heap_.back();
  heap_.pop_back();
  streams_[s]->Take(&current_);
  if (streams_[s]->Fill()) {
    heap_.push_back(s);
    std::push_heap(heap_.begin(), heap_.end(), later);
  }
  if (options_.order == LogOrder::kTime) {
    if (current_.message.timestamp_ms < last_ts_) ++out_of_order_;
    last_ts_ = std::max(last_ts_, current_.message.timestamp_ms);
  }
  return &current_;
}

}  // namespace cityloop::replay
