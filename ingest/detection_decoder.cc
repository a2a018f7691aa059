// DetectionDecoder: simdjson On Demand over a reused padded buffer, with the
// reading and checks shared by every input decoder (json_fields.h). The
// elements of detections[] are read as the syntax walk passes them (On Demand
// reads forward only) into records reused from message to message, and
// checked after the walk.
//
// Checks run in this order, the first failure wins:
//   1. size (oversized), 2. JSON syntax of the whole message (every element
//   included), root object, trailing content, nesting deeper than 64 levels
//   (malformed_json), 3. presence and JSON type of camera_id, ts, detections
//   (missing_field, wrong_type; an empty camera_id is missing_field, one
//   longer than 128 characters out_of_range; detections must be an array,
//   which may be empty), 4. meaning: ts parse (bad_timestamp), skew and age
//   (future_timestamp, stale_timestamp), camera_id registered in
//   city.cameras (unknown_location), the camera inside the city grid
//   (outside_city), at most ingest.max_detections elements (out_of_range),
//   then element by element, the first bad one winning: an object
//   (wrong_type); presence and type of label, score, bbox, track_id
//   (missing_field, wrong_type; label non-empty and at most 64 characters,
//   track_id at most 64, else missing_field / out_of_range); score in [0, 1];
//   bbox exactly 4 numbers [x, y, w, h], each in [0, 1], x + w <= 1 and
//   y + h <= 1 up to 1e-9 (out_of_range).
// Details name the element: "detections[3].score=1.5 (number) outside [0, 1]".
// A JSON null counts as absent (a null element is not an object). track_id
// may be a string or an integer, which becomes its decimal text. Unknown
// fields, at the root and in elements, are checked for syntax and otherwise
// ignored; a repeated field keeps its last value.
#include "ingest/detection_decoder.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <optional>
#include <span>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "ingest/json_fields.h"

namespace cityloop::ingest {

using internal::Expect;
using internal::Field;
using internal::Need;
namespace od = internal::od;

namespace {

constexpr std::string_view kDetectionsKey = "detections";
constexpr size_t kMaxLabelChars = 64;
constexpr size_t kMaxTrackIdChars = 64;
constexpr double kBoxSlack = 1e-9;

// One element of detections[] as read.
struct Element {
  bool is_object = false;
  Field self{"", Expect::kNumber};  // the element itself when it is not an object, for the detail
  Field label{"label", Expect::kString, Need::kRequired, kMaxLabelChars};
  Field score{"score", Expect::kNumber, Need::kRequired};
  Field bbox{"bbox", Expect::kArray};
  Field track_id{"track_id", Expect::kStringOrInteger, Need::kOptional, kMaxTrackIdChars};
  std::array<Field, 4> box{
      {{"", Expect::kNumber}, {"", Expect::kNumber}, {"", Expect::kNumber}, {"", Expect::kNumber}}};

  void Clear() {
    is_object = false;
    for (Field* f : {&self, &label, &score, &bbox, &track_id}) f->ClearValue();
  }
};

// "detections[3]" and, for the fields of the element, "detections[3]." without
// an allocation.
class ElementName {
 public:
  explicit ElementName(size_t index) {
    kDetectionsKey.copy(buf_, kDetectionsKey.size());
    char* p = buf_ + kDetectionsKey.size();
    *p++ = '[';
    p = std::to_chars(p, buf_ + sizeof buf_, index).ptr;
    *p++ = ']';
    len_ = static_cast<size_t>(p - buf_);
    *p = '.';
  }
  std::string Path() const { return std::string(buf_, len_); }
  std::string_view Prefix() const { return {buf_, len_ + 1}; }
  std::string Of(std::string_view key) const { return std::string(Prefix()) + std::string(key); }

 private:
  char buf_[48];
  size_t len_ = 0;
};

// The track id as text: a string as it is, an integer in decimal.
std::string TrackIdText(const Field& f) {
  if (!f.present) return {};
  if (f.type == od::json_type::string) return std::string(f.str);
  if (!f.is_integer) return std::to_string(static_cast<int64_t>(f.num));  // e.g. 1e3: integral, below 2^53
  if (f.int_overflow) return std::string(f.raw);                          // beyond int64: the digits as written
  return std::to_string(f.i64);
}

// Steps 3 and 4 for element index; fills *out.
std::optional<Rejection> CheckElement(Element& e, size_t index, CameraDetection* out) {
  const ElementName name(index);
  if (!e.is_object) return internal::WrongType(name.Path(), e.self, "object");
  Field* const fields[] = {&e.label, &e.score, &e.bbox, &e.track_id};
  if (auto r = internal::CheckFields(fields, name.Prefix())) return r;
  if (!(e.score.num >= 0 && e.score.num <= 1)) return internal::OutsideRange(name.Of("score"), e.score, 0, 1);
  if (e.bbox.present) {
    if (e.bbox.count != e.box.size()) {
      return internal::Reject(reason::kOutOfRange, name.Of("bbox") + " has " + std::to_string(e.bbox.count) +
                                                       " items, expected 4: [x, y, w, h]");
    }
    for (size_t i = 0; i < e.box.size(); ++i) {
      const Field& v = e.box[i];
      if (v.type != od::json_type::number) {
        return internal::WrongType(name.Of("bbox[" + std::to_string(i) + "]"), v, "number");
      }
      if (!(v.num >= 0 && v.num <= 1)) {
        return internal::OutsideRange(name.Of("bbox[" + std::to_string(i) + "]"), v, 0, 1);
      }
    }
    for (size_t axis = 0; axis < 2; ++axis) {
      const double end = e.box[axis].num + e.box[axis + 2].num;
      if (end > 1 + kBoxSlack) {
        const char* what = axis == 0 ? " x + w = " : " y + h = ";
        return internal::Reject(reason::kOutOfRange, name.Of("bbox") + what + internal::Num(e.box[axis].num) + " + " +
                                                         internal::Num(e.box[axis + 2].num) + " = " +
                                                         internal::Num(end) + ", beyond 1");
      }
    }
  }
  out->label = std::string(e.label.str);
  out->score = e.score.num;
  for (size_t i = 0; i < e.box.size(); ++i) out->bbox[i] = e.bbox.present ? e.box[i].num : 0;
  out->track_id = TrackIdText(e.track_id);
  return std::nullopt;
}

}  // namespace

// Reads the elements of detections[] during the walk: the first `limit` (all
// when limit is 0) into Element records, the rest only for syntax (a message
// with more is rejected anyway).
class DetectionDecoder::Elements final : public internal::ItemReader {
 public:
  explicit Elements(size_t limit) : limit_(limit) {}

  void Begin() override { stored_ = 0; }

  bool Item(od::value item, size_t index, int depth, internal::SyntaxError* error) override {
    *error = internal::SyntaxError{};
    if (limit_ > 0 && index >= limit_) return internal::Validate(item, depth);
    if (stored_ == elements_.size()) elements_.emplace_back();
    Element& e = elements_[stored_++];
    e.Clear();
    od::json_type t;
    if (item.type().get(t) != simdjson::SUCCESS) return false;
    if (t != od::json_type::object) return internal::Capture(item, depth, &e.self);
    e.is_object = true;
    od::object obj;
    if (depth > internal::kMaxNesting || item.get_object().get(obj) != simdjson::SUCCESS) return false;
    internal::FieldItems box_items(e.box);
    e.bbox.items = &box_items;
    Field* const fields[] = {&e.label, &e.score, &e.bbox, &e.track_id};
    const bool ok = internal::ReadMembers(obj, fields, depth + 1, error);
    e.bbox.items = nullptr;
    return ok;
  }

  // The elements of the last complete read, in order.
  std::span<Element> stored() { return {elements_.data(), stored_}; }

 private:
  size_t limit_;
  std::vector<Element> elements_;  // grows to the largest message seen, at most limit_
  size_t stored_ = 0;
};

DetectionDecoder::DetectionDecoder(std::shared_ptr<const CityModel> city)
    : JsonDecoderBase(std::move(city)),
      elements_(std::make_unique<Elements>(
          static_cast<size_t>(std::max(0, this->city().config().ingest.max_detections_per_message)))) {}

DetectionDecoder::~DetectionDecoder() = default;

std::variant<CameraDetections, Rejection> DetectionDecoder::Decode(std::string_view value, int64_t now_ms) {
  // 1. size, 2. syntax; 3. presence and types, in this order.
  Field camera_id("camera_id", Expect::kString, Need::kRequired, internal::kMaxIdChars);
  internal::TimestampField ts;
  Field detections(kDetectionsKey, Expect::kArray, Need::kRequired);
  detections.items = elements_.get();
  Field* const fields[] = {&camera_id, &ts, &detections};
  if (auto r = Read(value, fields)) return std::move(*r);

  // 4. Meaning.
  const CityModel& city = this->city();
  const IngestOptions& limits = city.config().ingest;
  int64_t ts_ms = 0;
  if (auto r = ts.Check(now_ms, limits, &ts_ms)) return std::move(*r);
  const Camera* camera = city.FindCamera(camera_id.str);
  if (!camera) {
    return internal::Reject(reason::kUnknownLocation, "camera_id=" + internal::Shown(camera_id.str) +
                                                          " is not a registered camera (city.cameras)");
  }
  int cell = -1;
  if (auto r = internal::CheckInsideCity(city, camera->position, false, "camera_id", camera_id.str, &cell)) {
    return std::move(*r);
  }
  if (limits.max_detections_per_message > 0 &&
      detections.count > static_cast<size_t>(limits.max_detections_per_message)) {
    return internal::Reject(reason::kOutOfRange, std::string(kDetectionsKey) + " has " +
                                                     std::to_string(detections.count) + " elements, limit " +
                                                     std::to_string(limits.max_detections_per_message));
  }

  CameraDetections out;
  const std::span<Element> elements = elements_->stored();
  out.detections.resize(elements.size());
  for (size_t i = 0; i < elements.size(); ++i) {
    if (auto r = CheckElement(elements[i], i, &out.detections[i])) return std::move(*r);
  }
  out.camera_id = std::string(camera_id.str);
  out.ts_ms = ts_ms;
  out.position = camera->position;
  out.cell = cell;
  return out;
}

}  // namespace cityloop::ingest
