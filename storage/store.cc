// Store on RocksDB: one column family per kind of record (see store.h), one
// rocksdb::WriteBatch per cityloop WriteBatch, so a micro-batch's state, audit,
// outbox and input offsets reach the WAL in one atomic write.
#include "storage/store.h"

#include <rocksdb/cache.h>
#include <rocksdb/db.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/options.h>
#include <rocksdb/slice.h>
#include <rocksdb/status.h>
#include <rocksdb/table.h>
#include <rocksdb/utilities/table_properties_collectors.h>
#include <rocksdb/write_batch.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <set>

#include <spdlog/spdlog.h>

namespace cityloop::storage {
namespace {

constexpr char kCases[] = "cases";
constexpr char kAudit[] = "audit";
constexpr char kOutbox[] = "outbox";
constexpr char kOffsets[] = "offsets";
constexpr char kState[] = "state";
constexpr char kMeta[] = "meta";
constexpr char kSnapshots[] = "snapshots";
constexpr char kEvents[] = "events";
constexpr char kSchemaVersionKey[] = "schema_version";

// Index of each of our column families in Impl::handles / Rep::cf.
enum Cf : size_t { kCfCases, kCfAudit, kCfOutbox, kCfOffsets, kCfState, kCfMeta, kCfSnapshots, kCfEvents, kCfCount };
constexpr const char* kCfNames[kCfCount] = {kCases, kAudit, kOutbox, kOffsets, kState, kMeta, kSnapshots, kEvents};

constexpr uint8_t kOutboxFormatVersion = 1;
constexpr size_t kBlockCacheBytes = 64u << 20;

// ---- key encoding ---------------------------------------------------------

void AppendBigEndian32(std::string* out, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out->push_back(static_cast<char>((v >> shift) & 0xff));
}

void AppendBigEndian64(std::string* out, uint64_t v) {
  for (int shift = 56; shift >= 0; shift -= 8) out->push_back(static_cast<char>((v >> shift) & 0xff));
}

uint32_t ReadBigEndian32(std::string_view b) {
  uint32_t v = 0;
  for (size_t i = 0; i < 4; ++i) v = (v << 8) | static_cast<uint8_t>(b[i]);
  return v;
}

uint64_t ReadBigEndian64(std::string_view b) {
  uint64_t v = 0;
  for (size_t i = 0; i < 8; ++i) v = (v << 8) | static_cast<uint8_t>(b[i]);
  return v;
}

std::string AuditPrefix(std::string_view case_id) {
  std::string k(case_id);
  k.push_back('\0');
  return k;
}

std::string AuditKey(std::string_view case_id, uint32_t seq) {
  std::string k = AuditPrefix(case_id);
  AppendBigEndian32(&k, seq);
  return k;
}

std::string OutboxKey(uint64_t seq) {
  std::string k;
  AppendBigEndian64(&k, seq);
  return k;
}

std::string OffsetKey(const TopicPartition& tp) {
  std::string k = tp.topic;
  k.push_back('\0');
  AppendBigEndian32(&k, static_cast<uint32_t>(tp.partition));
  return k;
}

std::optional<TopicPartition> ParseOffsetKey(std::string_view k) {
  if (k.size() < 5 || k[k.size() - 5] != '\0') return std::nullopt;
  TopicPartition tp;
  tp.topic = std::string(k.substr(0, k.size() - 5));
  tp.partition = static_cast<int32_t>(ReadBigEndian32(k.substr(k.size() - 4)));
  return tp;
}

std::optional<int64_t> ParseInt64(std::string_view s) {
  int64_t v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size() || s.empty()) return std::nullopt;
  return v;
}

// Smallest key greater than every key that starts with prefix; empty when
// there is none (prefix is empty or all 0xff).
std::string PrefixSuccessor(std::string_view prefix) {
  std::string s(prefix);
  while (!s.empty()) {
    auto& last = reinterpret_cast<unsigned char&>(s.back());
    if (last != 0xff) {
      ++last;
      return s;
    }
    s.pop_back();
  }
  return s;
}

rocksdb::Slice ToSlice(std::string_view s) { return {s.data(), s.size()}; }
std::string_view ToView(const rocksdb::Slice& s) { return {s.data(), s.size()}; }

// ---- status mapping -------------------------------------------------------

bool ContainsLock(const std::string& s) {
  std::string lower(s);
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return lower.find("lock") != std::string::npos;
}

Status FromRocks(const rocksdb::Status& s, const std::string& what) {
  if (s.ok()) return Status::Ok();
  std::string msg = what + ": " + s.ToString();
  if (s.IsCorruption()) return Status::DataLoss(msg);
  if (s.IsNotFound() || s.IsPathNotFound()) return Status::NotFound(msg);
  if (s.IsInvalidArgument()) return Status::InvalidArgument(msg);
  if (s.IsBusy() || s.IsTimedOut() || s.IsTryAgain() || s.IsIncomplete()) return Status::Unavailable(msg);
  if (s.IsIOError()) return Status::IoError(msg);
  return Status::Internal(msg);
}

// ---- outbox record encoding -----------------------------------------------
// version(1) | topic | key | value | header count(4) | (name | value)*
// where each string is length(4, big-endian) followed by its bytes.

void AppendString(std::string* out, std::string_view s) {
  AppendBigEndian32(out, static_cast<uint32_t>(s.size()));
  out->append(s);
}

class Reader {
 public:
  explicit Reader(std::string_view b) : b_(b) {}
  bool U8(uint8_t* v) {
    if (b_.empty()) return false;
    *v = static_cast<uint8_t>(b_[0]);
    b_.remove_prefix(1);
    return true;
  }
  bool U32(uint32_t* v) {
    if (b_.size() < 4) return false;
    *v = ReadBigEndian32(b_);
    b_.remove_prefix(4);
    return true;
  }
  bool Str(std::string* s) {
    uint32_t n = 0;
    if (!U32(&n) || b_.size() < n) return false;
    s->assign(b_.data(), n);
    b_.remove_prefix(n);
    return true;
  }
  size_t remaining() const { return b_.size(); }

 private:
  std::string_view b_;
};

}  // namespace

std::string EncodeOutboxRecord(const OutboxRecord& r) {
  std::string out;
  out.reserve(1 + 16 + r.topic.size() + r.key.size() + r.value.size());
  out.push_back(static_cast<char>(kOutboxFormatVersion));
  AppendString(&out, r.topic);
  AppendString(&out, r.key);
  AppendString(&out, r.value);
  AppendBigEndian32(&out, static_cast<uint32_t>(r.headers.size()));
  for (const auto& [name, value] : r.headers) {
    AppendString(&out, name);
    AppendString(&out, value);
  }
  return out;
}

Result<OutboxRecord> DecodeOutboxRecord(uint64_t seq, std::string_view bytes) {
  const std::string where = "outbox record " + std::to_string(seq);
  Reader in(bytes);
  uint8_t version = 0;
  if (!in.U8(&version)) return Status::DataLoss(where + " is empty");
  if (version != kOutboxFormatVersion) {
    return Status::DataLoss(where + " has unknown format version " + std::to_string(version));
  }
  OutboxRecord r;
  r.seq = seq;
  uint32_t headers = 0;
  if (!in.Str(&r.topic) || !in.Str(&r.key) || !in.Str(&r.value) || !in.U32(&headers)) {
    return Status::DataLoss(where + " is truncated");
  }
  // Each header needs at least 8 bytes; refuse counts the bytes cannot hold
  // before reserving anything.
  if (headers > in.remaining() / 8) return Status::DataLoss(where + " has a corrupt header count");
  r.headers.reserve(headers);
  for (uint32_t i = 0; i < headers; ++i) {
    std::string name, value;
    if (!in.Str(&name) || !in.Str(&value)) return Status::DataLoss(where + " is truncated in its headers");
    r.headers.emplace_back(std::move(name), std::move(value));
  }
  if (in.remaining() != 0) return Status::DataLoss(where + " has trailing bytes");
  return r;
}

// ---- WriteBatch -----------------------------------------------------------

struct WriteBatch::Rep {
  const void* owner = nullptr;  // the Store::Impl that made it
  rocksdb::ColumnFamilyHandle* cf[kCfCount] = {};
  rocksdb::WriteBatch batch;
};

WriteBatch::WriteBatch(std::unique_ptr<Rep> rep) : rep_(std::move(rep)) {}
WriteBatch::WriteBatch(WriteBatch&&) noexcept = default;
WriteBatch& WriteBatch::operator=(WriteBatch&&) noexcept = default;
WriteBatch::~WriteBatch() = default;

// rocksdb::WriteBatch::Put only fails when the batch exceeds max_bytes, which
// we never set; a failure is therefore a bug.
#define CL_ROCKS_CHECK(expr)                                  \
  do {                                                        \
    const rocksdb::Status rs_ = (expr);                       \
    CL_CHECK_MSG(rs_.ok(), rs_.ToString());                   \
  } while (0)

void WriteBatch::PutCase(std::string_view case_id, std::string_view json) {
  CL_CHECK(rep_);
  CL_ROCKS_CHECK(rep_->batch.Put(rep_->cf[kCfCases], ToSlice(case_id), ToSlice(json)));
}

void WriteBatch::PutAudit(std::string_view case_id, uint32_t seq, std::string_view json) {
  CL_CHECK(rep_);
  CL_ROCKS_CHECK(rep_->batch.Put(rep_->cf[kCfAudit], AuditKey(case_id, seq), ToSlice(json)));
}

void WriteBatch::PutOutbox(const OutboxRecord& record) {
  CL_CHECK(rep_);
  CL_ROCKS_CHECK(rep_->batch.Put(rep_->cf[kCfOutbox], OutboxKey(record.seq), EncodeOutboxRecord(record)));
}

void WriteBatch::PutOffset(const TopicPartition& tp, int64_t next_offset) {
  CL_CHECK(rep_);
  CL_ROCKS_CHECK(rep_->batch.Put(rep_->cf[kCfOffsets], OffsetKey(tp), std::to_string(next_offset)));
}

void WriteBatch::PutState(std::string_view key, std::string_view value) {
  CL_CHECK(rep_);
  CL_ROCKS_CHECK(rep_->batch.Put(rep_->cf[kCfState], ToSlice(key), ToSlice(value)));
}

void WriteBatch::DeleteState(std::string_view key) {
  CL_CHECK(rep_);
  CL_ROCKS_CHECK(rep_->batch.Delete(rep_->cf[kCfState], ToSlice(key)));
}

void WriteBatch::PutEvent(uint64_t seq, std::string_view topic, std::string_view json) {
  std::string value(topic);
  value.push_back('\0');
  value.append(json);
  CL_ROCKS_CHECK(rep_->batch.Put(rep_->cf[kCfEvents], OutboxKey(seq), value));
}

void WriteBatch::DeleteEventsBefore(uint64_t seq) {
  CL_ROCKS_CHECK(rep_->batch.DeleteRange(rep_->cf[kCfEvents], OutboxKey(0), OutboxKey(seq)));
}

void WriteBatch::PutMeta(std::string_view key, std::string_view value) {
  CL_CHECK(rep_);
  CL_ROCKS_CHECK(rep_->batch.Put(rep_->cf[kCfMeta], ToSlice(key), ToSlice(value)));
}

void WriteBatch::DeleteMeta(std::string_view key) {
  CL_CHECK(rep_);
  CL_ROCKS_CHECK(rep_->batch.Delete(rep_->cf[kCfMeta], ToSlice(key)));
}

void WriteBatch::PutSnapshot(std::string_view id, std::string_view jpeg) {
  CL_CHECK(rep_);
  CL_ROCKS_CHECK(rep_->batch.Put(rep_->cf[kCfSnapshots], ToSlice(id), ToSlice(jpeg)));
}

void WriteBatch::DeleteSnapshot(std::string_view id) {
  CL_CHECK(rep_);
  CL_ROCKS_CHECK(rep_->batch.Delete(rep_->cf[kCfSnapshots], ToSlice(id)));
}

size_t WriteBatch::count() const { return rep_ ? static_cast<size_t>(rep_->batch.Count()) : 0; }

#undef CL_ROCKS_CHECK

// ---- Store ----------------------------------------------------------------

struct Store::Impl {
  std::string path;
  StoreOptions options;
  std::shared_ptr<rocksdb::Cache> block_cache;
  std::unique_ptr<rocksdb::DB> db;
  std::vector<rocksdb::ColumnFamilyHandle*> handles;  // every open CF, ours and any unknown ones
  rocksdb::ColumnFamilyHandle* cf[kCfCount] = {};
  int schema_version = 0;
  Store::ChangeListener listener;
  uint64_t change_seq = 0;

  // Writes batch (numbered, with a listener) and tells the listener.
  rocksdb::Status WriteAndTell(rocksdb::WriteBatch* batch) {
    if (!listener) return db->Write(WriteOpts(), batch);
    const std::string seq = std::to_string(change_seq + 1);
    rocksdb::Status s = batch->Put(cf[kCfMeta], ToSlice(Store::kChangeSeqKey), seq);
    if (s.ok()) s = db->Write(WriteOpts(), batch);
    if (!s.ok()) return s;
    ++change_seq;
    listener(change_seq, EncodeChangeSet(*batch));
    return s;
  }
  std::string EncodeChangeSet(const rocksdb::WriteBatch& batch) const;

  ~Impl() {
    if (!db) return;
    for (auto* h : handles) {
      if (h) db->DestroyColumnFamilyHandle(h).PermitUncheckedError();
    }
    db->Close().PermitUncheckedError();
  }

  rocksdb::WriteOptions WriteOpts() const {
    rocksdb::WriteOptions w;
    w.sync = options.sync;
    w.disableWAL = false;
    return w;
  }

  Result<std::optional<std::string>> Get(Cf which, std::string_view key) const {
    std::string value;
    rocksdb::Status s = db->Get(rocksdb::ReadOptions(), cf[which], ToSlice(key), &value);
    if (s.IsNotFound()) return std::optional<std::string>();
    if (!s.ok()) return FromRocks(s, std::string("get from ") + kCfNames[which]);
    return std::optional<std::string>(std::move(value));
  }

  // Iterates the keys in [prefix, successor(prefix)) in order until fn says stop.
  // Keys with prefix, from the first >= start (start sorts after prefix or is empty).
  Status Scan(Cf which, std::string_view prefix, const std::function<bool(std::string_view, std::string_view)>& fn,
              std::string_view start = {}) const {
    const std::string upper = PrefixSuccessor(prefix);
    rocksdb::Slice upper_slice(upper);
    rocksdb::ReadOptions ro;
    if (!upper.empty()) ro.iterate_upper_bound = &upper_slice;
    std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(ro, cf[which]));
    for (it->Seek(ToSlice(start > prefix ? start : prefix)); it->Valid(); it->Next()) {
      if (!fn(ToView(it->key()), ToView(it->value()))) break;
    }
    return FromRocks(it->status(), std::string("iterate ") + kCfNames[which]);
  }

  bool HasAnyData() const {
    for (size_t i = 0; i < kCfCount; ++i) {
      std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions(), cf[i]));
      it->SeekToFirst();
      if (it->Valid()) return true;
    }
    return false;
  }
};

namespace {

rocksdb::ColumnFamilyOptions CfOptions(const std::string& name, const std::shared_ptr<rocksdb::Cache>& cache) {
  rocksdb::ColumnFamilyOptions o;
  o.compaction_style = rocksdb::kCompactionStyleLevel;
  o.level_compaction_dynamic_level_bytes = true;
  rocksdb::BlockBasedTableOptions t;
  t.block_cache = cache;
  t.cache_index_and_filter_blocks = true;
  t.pin_l0_filter_and_index_blocks_in_cache = true;
  t.format_version = 5;
  if (name == kCases || name == kState) {
    // Point lookups dominate (case by id, detector state by key).
    t.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
    t.whole_key_filtering = true;
  }
  o.table_factory.reset(rocksdb::NewBlockBasedTableFactory(t));
  if (name == kOutbox) {
    // A queue: written once, read in order, deleted soon after. Compact files
    // full of tombstones early so the head-of-queue scan stays cheap.
    o.table_properties_collector_factories.emplace_back(
        rocksdb::NewCompactOnDeletionCollectorFactory(/*sliding_window_size=*/1024,
                                                      /*deletion_trigger=*/512));
  }
  if (name == kSnapshots) {
    // JPEGs: large values, read rarely (an operator opening a case).
    o.enable_blob_files = true;
    o.min_blob_size = 4096;
  }
  if (name == kMeta || name == kOffsets) {
    o.write_buffer_size = 4u << 20;  // tiny, rewritten in place
  }
  return o;
}

}  // namespace

// Change sets: a sequence of ops, each
//   u8 op (kChangePut, kChangeDelete, kChangeDeleteRange), u8 column family
//   (its index in kCfNames), then two length-prefixed strings (varint32
//   length): key and value, or begin and end for a range; a delete has an
//   empty value.
namespace {

enum ChangeOp : uint8_t { kChangePut = 1, kChangeDelete = 2, kChangeDeleteRange = 3 };

void PutVarint32(std::string* out, uint32_t v) {
  while (v >= 0x80) {
    out->push_back(static_cast<char>(v | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<char>(v));
}

bool GetVarint32(std::string_view* in, uint32_t* v) {
  *v = 0;
  for (int shift = 0; shift <= 28 && !in->empty(); shift += 7) {
    const auto byte = static_cast<uint8_t>(in->front());
    in->remove_prefix(1);
    *v |= static_cast<uint32_t>(byte & 0x7f) << shift;
    if (!(byte & 0x80)) return true;
  }
  return false;
}

void PutChange(std::string* out, ChangeOp op, size_t cf, const rocksdb::Slice& a, const rocksdb::Slice& b) {
  out->push_back(static_cast<char>(op));
  out->push_back(static_cast<char>(cf));
  PutVarint32(out, static_cast<uint32_t>(a.size()));
  out->append(a.data(), a.size());
  PutVarint32(out, static_cast<uint32_t>(b.size()));
  out->append(b.data(), b.size());
}

// Re-encodes a WriteBatch with our column family indexes.
class ChangeEncoder : public rocksdb::WriteBatch::Handler {
 public:
  ChangeEncoder(std::string* out, std::map<uint32_t, size_t> cf_of_id) : out_(out), cf_of_id_(std::move(cf_of_id)) {}
  rocksdb::Status PutCF(uint32_t id, const rocksdb::Slice& key, const rocksdb::Slice& value) override {
    return Add(kChangePut, id, key, value);
  }
  rocksdb::Status DeleteCF(uint32_t id, const rocksdb::Slice& key) override {
    return Add(kChangeDelete, id, key, rocksdb::Slice());
  }
  rocksdb::Status SingleDeleteCF(uint32_t id, const rocksdb::Slice& key) override {
    return Add(kChangeDelete, id, key, rocksdb::Slice());
  }
  rocksdb::Status DeleteRangeCF(uint32_t id, const rocksdb::Slice& begin, const rocksdb::Slice& end) override {
    return Add(kChangeDeleteRange, id, begin, end);
  }

 private:
  rocksdb::Status Add(ChangeOp op, uint32_t id, const rocksdb::Slice& a, const rocksdb::Slice& b) {
    auto it = cf_of_id_.find(id);
    if (it == cf_of_id_.end()) return rocksdb::Status::InvalidArgument("a write to a column family cityloop does not know");
    PutChange(out_, op, it->second, a, b);
    return rocksdb::Status::OK();
  }
  std::string* out_;
  std::map<uint32_t, size_t> cf_of_id_;
};

}  // namespace

std::string Store::Impl::EncodeChangeSet(const rocksdb::WriteBatch& batch) const {
  std::map<uint32_t, size_t> cf_of_id;
  for (size_t c = 0; c < kCfCount; ++c) cf_of_id[cf[c]->GetID()] = c;
  std::string out;
  ChangeEncoder encoder(&out, std::move(cf_of_id));
  rocksdb::Status s = batch.Iterate(&encoder);
  if (!s.ok()) spdlog::error("store {}: encoding a change set: {}", path, s.ToString());
  return out;
}

Status Store::SetChangeListener(ChangeListener listener) {
  auto stored = impl_->Get(kCfMeta, kChangeSeqKey);
  if (!stored.ok()) return stored.status();
  impl_->change_seq = 0;
  if (*stored) {
    auto v = ParseInt64(**stored);
    if (!v || *v < 0) return Status::DataLoss("store " + impl_->path + ": unreadable " + std::string(kChangeSeqKey));
    impl_->change_seq = static_cast<uint64_t>(*v);
  }
  impl_->listener = std::move(listener);
  return Status::Ok();
}

uint64_t Store::change_seq() const {
  if (impl_->listener) return impl_->change_seq;
  auto stored = impl_->Get(kCfMeta, kChangeSeqKey);
  if (!stored.ok() || !*stored) return 0;
  auto v = ParseInt64(**stored);
  return v && *v > 0 ? static_cast<uint64_t>(*v) : 0;
}

Status Store::ApplyChangeSet(std::string_view change_set) {
  rocksdb::WriteBatch batch;
  std::string_view in = change_set;
  while (!in.empty()) {
    if (in.size() < 2) return Status::DataLoss("change set: truncated op");
    const auto op = static_cast<uint8_t>(in[0]);
    const auto c = static_cast<uint8_t>(in[1]);
    in.remove_prefix(2);
    if (c >= kCfCount) return Status::DataLoss("change set: unknown column family " + std::to_string(c));
    std::string_view parts[2];
    for (auto& part : parts) {
      uint32_t n = 0;
      if (!GetVarint32(&in, &n) || n > in.size()) return Status::DataLoss("change set: truncated string");
      part = in.substr(0, n);
      in.remove_prefix(n);
    }
    rocksdb::Status s;
    if (op == kChangePut) s = batch.Put(impl_->cf[c], ToSlice(parts[0]), ToSlice(parts[1]));
    else if (op == kChangeDelete) s = batch.Delete(impl_->cf[c], ToSlice(parts[0]));
    else if (op == kChangeDeleteRange) s = batch.DeleteRange(impl_->cf[c], ToSlice(parts[0]), ToSlice(parts[1]));
    else return Status::DataLoss("change set: unknown op " + std::to_string(op));
    if (!s.ok()) return FromRocks(s, "change set");
  }
  return FromRocks(impl_->db->Write(impl_->WriteOpts(), &batch), "apply change set to " + impl_->path);
}

Status Store::ExportChangeSets(size_t chunk_bytes,
                               const std::function<Status(std::string_view change_set)>& fn) const {
  const rocksdb::Snapshot* snapshot = impl_->db->GetSnapshot();
  rocksdb::ReadOptions ro;
  ro.snapshot = snapshot;
  Status result;
  std::string chunk;
  for (size_t c = 0; c < kCfCount && result.ok(); ++c) {
    std::unique_ptr<rocksdb::Iterator> it(impl_->db->NewIterator(ro, impl_->cf[c]));
    for (it->SeekToFirst(); it->Valid() && result.ok(); it->Next()) {
      if (c == kCfMeta && it->key().ToStringView() == kSchemaVersionKey) continue;  // each store has its own
      PutChange(&chunk, kChangePut, c, it->key(), it->value());
      if (chunk.size() >= chunk_bytes) {
        result = fn(chunk);
        chunk.clear();
      }
    }
    if (result.ok() && !it->status().ok()) result = FromRocks(it->status(), std::string("export ") + kCfNames[c]);
  }
  if (result.ok() && !chunk.empty()) result = fn(chunk);
  impl_->db->ReleaseSnapshot(snapshot);
  return result;
}

Store::Store(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Store::~Store() = default;

Result<std::unique_ptr<Store>> Store::Open(const std::string& path, const StoreOptions& options) {
  auto impl = std::make_unique<Impl>();
  impl->path = path;
  impl->options = options;
  impl->block_cache = rocksdb::NewLRUCache(kBlockCacheBytes);

  rocksdb::DBOptions db_options;
  db_options.create_if_missing = options.create_if_missing;
  db_options.create_missing_column_families = true;
  db_options.max_background_jobs = 2;
  db_options.bytes_per_sync = 1u << 20;
  // With several column families a rarely written one (meta) pins old WAL
  // files; bound the WAL so RocksDB flushes it.
  db_options.max_total_wal_size = 64u << 20;
  db_options.keep_log_file_num = 5;
  db_options.max_log_file_size = 16u << 20;
  db_options.manual_wal_flush = false;

  // RocksDB must open every column family present on disk.
  std::set<std::string> names = {rocksdb::kDefaultColumnFamilyName};
  for (const char* n : kCfNames) names.insert(n);
  std::vector<std::string> existing;
  if (rocksdb::DB::ListColumnFamilies(db_options, path, &existing).ok()) {
    names.insert(existing.begin(), existing.end());
  }
  std::vector<rocksdb::ColumnFamilyDescriptor> descriptors;
  for (const auto& n : names) descriptors.emplace_back(n, CfOptions(n, impl->block_cache));

  rocksdb::DB* raw = nullptr;
  rocksdb::Status s = rocksdb::DB::Open(db_options, path, descriptors, &impl->handles, &raw);
  if (!s.ok()) {
    if (s.IsIOError() && ContainsLock(s.ToString())) {
      return Status::FailedPrecondition("store " + path +
                                        " is already open (its LOCK file is held by this or another "
                                        "process): " + s.ToString());
    }
    if (s.IsInvalidArgument() && !options.create_if_missing) {
      return Status::NotFound("store " + path + " does not exist: " + s.ToString());
    }
    return FromRocks(s, "open store " + path);
  }
  impl->db.reset(raw);
  for (size_t i = 0; i < descriptors.size(); ++i) {
    for (size_t c = 0; c < kCfCount; ++c) {
      if (descriptors[i].name == kCfNames[c]) impl->cf[c] = impl->handles[i];
    }
  }
  for (auto* h : impl->cf) CL_CHECK(h != nullptr);

  auto version = impl->Get(kCfMeta, kSchemaVersionKey);
  if (!version.ok()) return version.status();
  if (!version->has_value()) {
    if (impl->HasAnyData()) {
      return Status::DataLoss("store " + path + " holds data but no schema_version; refusing to guess");
    }
    rocksdb::WriteOptions w;
    w.sync = true;
    s = impl->db->Put(w, impl->cf[kCfMeta], kSchemaVersionKey, std::to_string(kSchemaVersion));
    if (!s.ok()) return FromRocks(s, "write schema_version to " + path);
    impl->schema_version = kSchemaVersion;
  } else {
    auto v = ParseInt64(**version);
    if (!v || *v < 1) {
      return Status::DataLoss("store " + path + " has an unreadable schema_version '" + **version + "'");
    }
    if (*v > kSchemaVersion) {
      return Status::FailedPrecondition("store " + path + " has schema version " + std::to_string(*v) +
                                        ", newer than version " + std::to_string(kSchemaVersion) +
                                        " this build knows; use a newer cityloop");
    }
    // Older versions would be migrated here; version 1 is the first.
    impl->schema_version = static_cast<int>(*v);
  }
  return std::unique_ptr<Store>(new Store(std::move(impl)));
}

WriteBatch Store::NewBatch() {
  auto rep = std::make_unique<WriteBatch::Rep>();
  rep->owner = impl_.get();
  std::copy(std::begin(impl_->cf), std::end(impl_->cf), std::begin(rep->cf));
  return WriteBatch(std::move(rep));
}

Status Store::Write(WriteBatch&& batch) {
  if (!batch.rep_) return Status::InvalidArgument("write of a moved-from batch");
  if (batch.rep_->owner != impl_.get()) return Status::InvalidArgument("batch was made by another store");
  if (batch.rep_->batch.Count() == 0) return Status::Ok();
  rocksdb::Status s = impl_->WriteAndTell(&batch.rep_->batch);
  batch.rep_.reset();
  return FromRocks(s, "write batch to " + impl_->path);
}

Result<std::optional<std::string>> Store::GetCase(std::string_view case_id) const {
  return impl_->Get(kCfCases, case_id);
}

Status Store::ForEachCase(const std::function<bool(std::string_view, std::string_view)>& fn) const {
  return impl_->Scan(kCfCases, "", fn);
}

Status Store::ForEachCaseAfter(std::string_view after_id,
                               const std::function<bool(std::string_view, std::string_view)>& fn) const {
  if (after_id.empty()) return ForEachCase(fn);
  std::string start(after_id);
  start.push_back('\0');  // the first id after after_id
  return impl_->Scan(kCfCases, "", fn, start);
}

Status Store::ForEachEventAfter(uint64_t after,
                                const std::function<bool(uint64_t, std::string_view, std::string_view)>& fn) const {
  Status corrupt;
  Status s = impl_->Scan(
      kCfEvents, "",
      [&](std::string_view k, std::string_view v) {
        const size_t sep = v.find('\0');
        if (k.size() != 8 || sep == std::string_view::npos) {
          corrupt = Status::DataLoss("malformed event log record");
          return false;
        }
        return fn(ReadBigEndian64(k), v.substr(0, sep), v.substr(sep + 1));
      },
      OutboxKey(after + 1));
  CL_RETURN_IF_ERROR(s);
  return corrupt;
}

uint64_t Store::FirstEventSeq() const {
  uint64_t first = 0;
  (void)impl_->Scan(kCfEvents, "", [&](std::string_view k, std::string_view) {
    if (k.size() == 8) first = ReadBigEndian64(k);
    return false;
  });
  return first;
}

Status Store::ForEachAudit(std::string_view case_id,
                           const std::function<bool(uint32_t, std::string_view)>& fn) const {
  const std::string prefix = AuditPrefix(case_id);
  Status corrupt;
  Status s = impl_->Scan(kCfAudit, prefix, [&](std::string_view k, std::string_view v) {
    if (k.size() != prefix.size() + 4) {
      corrupt = Status::DataLoss("malformed audit key for case " + std::string(case_id));
      return false;
    }
    return fn(ReadBigEndian32(k.substr(prefix.size())), v);
  });
  CL_RETURN_IF_ERROR(s);
  return corrupt;
}

Status Store::ForEachOutbox(const std::function<bool(const OutboxRecord&)>& fn) const {
  Status corrupt;
  Status s = impl_->Scan(kCfOutbox, "", [&](std::string_view k, std::string_view v) {
    if (k.size() != 8) {
      corrupt = Status::DataLoss("malformed outbox key of " + std::to_string(k.size()) + " bytes");
      return false;
    }
    auto r = DecodeOutboxRecord(ReadBigEndian64(k), v);
    if (!r.ok()) {
      corrupt = r.status();
      return false;
    }
    return fn(*r);
  });
  CL_RETURN_IF_ERROR(s);
  return corrupt;
}

Status Store::DeleteOutbox(const std::vector<uint64_t>& seqs) {
  if (seqs.empty()) return Status::Ok();
  rocksdb::WriteBatch batch;
  for (uint64_t seq : seqs) {
    rocksdb::Status s = batch.Delete(impl_->cf[kCfOutbox], OutboxKey(seq));
    if (!s.ok()) return FromRocks(s, "delete outbox");
  }
  return FromRocks(impl_->WriteAndTell(&batch), "delete outbox in " + impl_->path);
}

std::optional<int64_t> Store::GetOffset(const TopicPartition& tp) const {
  auto v = impl_->Get(kCfOffsets, OffsetKey(tp));
  if (!v.ok()) {
    spdlog::error("store {}: reading the offset of {}[{}] failed: {}", impl_->path, tp.topic, tp.partition,
                  v.status().ToString());
    return std::nullopt;
  }
  if (!v->has_value()) return std::nullopt;
  auto offset = ParseInt64(**v);
  if (!offset) spdlog::error("store {}: offset of {}[{}] is unreadable: '{}'", impl_->path, tp.topic, tp.partition, **v);
  return offset;
}

std::map<TopicPartition, int64_t> Store::AllOffsets() const {
  std::map<TopicPartition, int64_t> out;
  // A read error leaves the map partial; it is logged, and GetOffset reports per partition.
  const Status s = impl_->Scan(kCfOffsets, "", [&](std::string_view k, std::string_view v) {
    auto tp = ParseOffsetKey(k);
    auto off = ParseInt64(v);
    if (tp && off) {
      out[*tp] = *off;
    } else {
      spdlog::error("store {}: skipping an unreadable offset entry ({} byte key)", impl_->path, k.size());
    }
    return true;
  });
  if (!s.ok()) spdlog::error("store {}: reading offsets failed: {}", impl_->path, s.ToString());
  return out;
}

Result<std::optional<std::string>> Store::GetState(std::string_view key) const {
  return impl_->Get(kCfState, key);
}

Status Store::ForEachState(std::string_view prefix,
                           const std::function<bool(std::string_view, std::string_view)>& fn) const {
  return impl_->Scan(kCfState, prefix, fn);
}

Result<std::optional<std::string>> Store::GetSnapshot(std::string_view id) const {
  return impl_->Get(kCfSnapshots, id);
}

Status Store::ForEachSnapshot(std::string_view prefix,
                              const std::function<bool(std::string_view, std::string_view)>& fn) const {
  return impl_->Scan(kCfSnapshots, prefix, fn);
}

Result<std::optional<std::string>> Store::GetMeta(std::string_view key) const {
  return impl_->Get(kCfMeta, key);
}

int Store::schema_version() const { return impl_->schema_version; }
const std::string& Store::path() const { return impl_->path; }

}  // namespace cityloop::storage
