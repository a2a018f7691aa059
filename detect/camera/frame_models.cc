#include "detect/camera/frame_models.h"

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <opencv2/objdetect.hpp>

#include <algorithm>
#include <cmath>

namespace cityloop::detect::camera {

namespace {

constexpr double kShortAlpha = 0.3;   // short-term background: about three frames
constexpr double kLongAlpha = 0.005;  // long-term: about 200 frames (40 s at 5 fps)...
constexpr double kOccupiedAlpha = kLongAlpha / 10;  // ...and ten times that where something stands

cv::Mat ToFloat(const cv::Mat& m) {
  cv::Mat f;
  m.convertTo(f, CV_32F);
  return f;
}


}  // namespace

void BackgroundModels::Reset(const FrameImages& f, int mean_frames) {
  mean_frames_ = std::max(1, mean_frames);
  motion_avg_ = ToFloat(f.small);
  short_bg_ = ToFloat(f.grey);
  long_bg_ = short_bg_.clone();
  learnt_ = 1;
  prev_grey_ = f.grey.clone();
  mog2_ = cv::createBackgroundSubtractorMOG2(300, 16, false);
  mog2_->setNMixtures(3);
  cv::Mat first;
  mog2_->apply(f.small, first, 1.0);  // the first frame is the background
  if (!dis_) dis_ = cv::DISOpticalFlow::create(cv::DISOpticalFlow::PRESET_FAST);
}

double BackgroundModels::UpdateMotion(const FrameImages& f, const cv::Mat& valid_small, int threshold, double alpha,
                                      cv::Mat* changed) {
  cv::Mat blurred;
  cv::GaussianBlur(f.small, blurred, cv::Size(5, 5), 0);
  cv::Mat d;
  cv::absdiff(ToFloat(blurred), motion_avg_, d);
  // compare gives the 8-bit 255/0 mask of threshold + convertTo in one pass.
  cv::compare(d, threshold, *changed, cv::CMP_GT);
  cv::bitwise_and(*changed, valid_small, *changed);
  cv::accumulateWeighted(blurred, motion_avg_, alpha);
  const int valid = std::max(1, cv::countNonZero(valid_small));
  return static_cast<double>(cv::countNonZero(*changed)) / valid;
}

void BackgroundModels::Foreground(const FrameImages& f, const cv::Mat& valid_small, cv::Mat* fg) {
  cv::Mat raw;
  mog2_->apply(f.small, raw);
  static const cv::Mat kernel = cv::getStructuringElement(cv::MORPH_ELLIPSE, cv::Size(3, 3));
  cv::morphologyEx(raw, *fg, cv::MORPH_OPEN, kernel);
  cv::morphologyEx(*fg, *fg, cv::MORPH_CLOSE, kernel);
  cv::bitwise_and(*fg, valid_small, *fg);
}

void BackgroundModels::Differences(const FrameImages& f, int threshold, cv::Mat* occupied, cv::Mat* still) {
  cv::Mat grey, d;
  f.grey.convertTo(grey, CV_32F);
  // Objects stand out from the settled background by less than motion does
  // from its running average; two thirds of the motion threshold is still
  // far above sensor noise.
  cv::absdiff(grey, long_bg_, d);
  cv::compare(d, threshold * 2 / 3.0, *occupied, cv::CMP_GT);
  cv::absdiff(grey, short_bg_, d);
  cv::Mat settled;
  cv::compare(d, threshold / 2.0, settled, cv::CMP_LE);
  static const cv::Mat small_kernel = cv::getStructuringElement(cv::MORPH_RECT, cv::Size(3, 3));
  static const cv::Mat big_kernel = cv::getStructuringElement(cv::MORPH_RECT, cv::Size(7, 7));
  cv::morphologyEx(*occupied, *occupied, cv::MORPH_OPEN, small_kernel);
  cv::bitwise_and(*occupied, settled, *still);
  cv::morphologyEx(*still, *still, cv::MORPH_OPEN, small_kernel);
  // An object's parts that look like the road (windows, shadows) split it: close the gaps.
  cv::morphologyEx(*still, *still, cv::MORPH_CLOSE, big_kernel);
}

void BackgroundModels::Learn(const FrameImages& f, const cv::Mat& occupied, const cv::Mat& frozen) {
  cv::accumulateWeighted(f.grey, short_bg_, kShortAlpha);
  if (learnt_ < mean_frames_) {
    ++learnt_;
    cv::accumulateWeighted(f.grey, long_bg_, 1.0 / learnt_);
    return;
  }
  cv::Mat free_of_objects, learn;
  cv::bitwise_not(frozen, learn);
  cv::bitwise_not(occupied, free_of_objects);
  cv::bitwise_and(learn, free_of_objects, free_of_objects);
  cv::bitwise_and(learn, occupied, learn);
  cv::accumulateWeighted(f.grey, long_bg_, kLongAlpha, free_of_objects);
  cv::accumulateWeighted(f.grey, long_bg_, kOccupiedAlpha, learn);
}

void BackgroundModels::Forget(const FrameImages& f, const cv::Mat& mask) { ToFloat(f.grey).copyTo(long_bg_, mask); }

void BackgroundModels::Flow(const FrameImages& f, const cv::Rect& roi, cv::Mat* flow) {
  if (prev_grey_.empty() || prev_grey_.size() != f.grey.size() || roi.area() == 0) {
    *flow = cv::Mat();
    return;
  }
  cv::Mat part;
  dis_->calc(prev_grey_(roi), f.grey(roi), part);
  flow->create(f.grey.size(), CV_32FC2);
  flow->setTo(cv::Scalar::all(0));
  part.copyTo((*flow)(roi));
}

void BackgroundModels::RememberFrame(const FrameImages& f) {
  f.grey.copyTo(prev_grey_);
}

double BackgroundModels::MovedShift(const FrameImages& f) {
  cv::Mat reference;
  cv::resize(long_bg_, reference, f.small.size(), 0, 0, cv::INTER_AREA);
  cv::Mat window;
  cv::createHanningWindow(window, f.small.size(), CV_32F);
  const cv::Point2d shift = cv::phaseCorrelate(reference, ToFloat(f.small), window);
  return std::hypot(shift.x, shift.y);
}

size_t BackgroundModels::Bytes() const {
  const auto bytes = [](const cv::Mat& m) { return m.empty() ? size_t{0} : m.total() * m.elemSize(); };
  // MOG2 keeps, per pixel and mixture, a weight, a mean and a variance, plus a mode count.
  const size_t mog2 = motion_avg_.total() * (3 * 3 * sizeof(float) + 1);
  return bytes(motion_avg_) + bytes(short_bg_) + bytes(long_bg_) + bytes(prev_grey_) + mog2;
}

bool IsGhost(const FrameImages& f, const cv::Mat& long_bg, const cv::Mat& blob, const cv::Rect& box) {
  // Compare the outline, not the inside: a car's flat body has less texture
  // than the asphalt it hides, but its outline is an edge in the frame; the
  // outline of what left is an edge only in the background.
  const cv::Rect grown = cv::Rect(box.x - 2, box.y - 2, box.width + 4, box.height + 4) & cv::Rect(cv::Point(), f.grey.size());
  cv::Mat outline;
  cv::morphologyEx(blob(grown), outline, cv::MORPH_GRADIENT, cv::getStructuringElement(cv::MORPH_RECT, cv::Size(3, 3)));
  if (cv::countNonZero(outline) == 0) return false;
  const auto edges = [&](const cv::Mat& img) {
    cv::Mat gx, gy, mag;
    cv::Sobel(img, gx, CV_32F, 1, 0);
    cv::Sobel(img, gy, CV_32F, 0, 1);
    cv::magnitude(gx, gy, mag);
    return cv::mean(mag, outline)[0];
  };
  cv::Mat bg;
  long_bg(grown).convertTo(bg, CV_8U);
  return edges(bg) > 1.5 * edges(f.grey(grown));
}

cv::Mat PolygonMask(const ImagePolygon& poly, cv::Size size) {
  cv::Mat mask = cv::Mat::zeros(size, CV_8U);
  std::vector<cv::Point> pts;
  for (const ImagePoint& p : poly) {
    pts.emplace_back(static_cast<int>(std::lround(p[0] * size.width)), static_cast<int>(std::lround(p[1] * size.height)));
  }
  cv::fillPoly(mask, std::vector<std::vector<cv::Point>>{pts}, cv::Scalar(255));
  return mask;
}

cv::Rect PolygonBounds(const ImagePolygon& poly, cv::Size size) {
  const auto [x, y, w, h] = BoundingBox(poly);
  const cv::Rect r(cv::Point(static_cast<int>(x * size.width), static_cast<int>(y * size.height)),
                   cv::Point(static_cast<int>(std::ceil((x + w) * size.width)),
                             static_cast<int>(std::ceil((y + h) * size.height))));
  return r & cv::Rect(0, 0, size.width, size.height);
}

TamperReadings ReadTamper(const FrameImages& f) {
  TamperReadings t;
  int channels[] = {0};
  int bins[] = {64};
  float range[] = {0, 256};
  const float* ranges[] = {range};
  cv::Mat hist;
  cv::calcHist(&f.small, 1, channels, cv::Mat(), hist, 1, bins, ranges);
  const double total = static_cast<double>(f.small.total());
  t.entropy = 0;
  for (int i = 0; i < hist.rows; ++i) {
    const double p = hist.at<float>(i) / total;
    if (p > 0) t.entropy -= p * std::log2(p);
  }
  cv::Scalar mean, stddev;
  cv::meanStdDev(f.small, mean, stddev);
  t.stddev = stddev[0];
  cv::Mat lap;
  cv::Laplacian(f.small, lap, CV_16S);
  cv::meanStdDev(lap, mean, stddev);
  t.sharpness = stddev[0] * stddev[0];
  return t;
}

void FireColour(const FrameImages& f, const cv::Rect& roi, cv::Mat* fire) {
  fire->create(f.colour.size(), CV_8U);
  fire->setTo(0);
  if (roi.area() == 0) return;
  cv::Mat ycrcb;
  cv::cvtColor(f.colour(roi), ycrcb, cv::COLOR_BGR2YCrCb);
  std::vector<cv::Mat> ch;
  cv::split(ycrcb, ch);
  const double y_mean = cv::mean(ch[0])[0];
  // Celik & Demirel's rules: brighter than the scene, red over blue by a
  // margin, and strongly red.
  cv::Mat bright, red_over_blue, strong, diff;
  cv::compare(ch[0], std::max(y_mean, 120.0), bright, cv::CMP_GE);
  cv::subtract(ch[1], ch[2], diff, cv::noArray(), CV_16S);
  cv::compare(diff, 40, red_over_blue, cv::CMP_GE);
  cv::compare(ch[1], 150, strong, cv::CMP_GE);
  cv::Mat part = (*fire)(roi);
  cv::bitwise_and(bright, red_over_blue, part);
  cv::bitwise_and(part, strong, part);
}

int CountPeople(std::string_view jpeg, const ImagePolygon& zone) {
  const cv::Mat buf(1, static_cast<int>(jpeg.size()), CV_8U, const_cast<char*>(jpeg.data()));
  const cv::Mat full = cv::imdecode(buf, cv::IMREAD_GRAYSCALE);
  if (full.empty()) return 0;
  cv::Rect roi = PolygonBounds(zone, full.size());
  // Room around the zone for a standing person's head and feet.
  roi.y -= roi.height / 2;
  roi.height += roi.height / 2;
  roi &= cv::Rect(0, 0, full.cols, full.rows);
  if (roi.area() == 0) return 0;
  cv::Mat crop;
  const double scale = std::clamp(160.0 / (full.rows / 6.0), 1.0, 3.0);
  cv::resize(full(roi), crop, cv::Size(), scale, scale, cv::INTER_LINEAR);
  if (crop.cols < 64 || crop.rows < 128) return 0;
  static const cv::HOGDescriptor hog = [] {
    cv::HOGDescriptor h;
    h.setSVMDetector(cv::HOGDescriptor::getDefaultPeopleDetector());
    return h;
  }();
  std::vector<cv::Rect> found;
  std::vector<double> weights;
  hog.detectMultiScale(crop, found, weights, 0, cv::Size(8, 8), cv::Size(), 1.1, 2);
  return static_cast<int>(found.size());
}

std::string Annotate(std::string_view jpeg, const Camera& camera, const std::array<double, 4>& box,
                     const std::string& label) {
  const cv::Mat buf(1, static_cast<int>(jpeg.size()), CV_8U, const_cast<char*>(jpeg.data()));
  cv::Mat img = cv::imdecode(buf, cv::IMREAD_COLOR);
  if (img.empty()) return {};
  const auto to_px = [&](const ImagePolygon& poly) {
    std::vector<cv::Point> pts;
    for (const ImagePoint& p : poly) {
      pts.emplace_back(static_cast<int>(p[0] * img.cols), static_cast<int>(p[1] * img.rows));
    }
    return pts;
  };
  for (const ImagePolygon& m : camera.masks) {
    cv::polylines(img, std::vector<std::vector<cv::Point>>{to_px(m)}, true, cv::Scalar(128, 128, 128), 1);
  }
  for (const CameraZone& z : camera.zones) {
    const auto pts = to_px(z.polygon);
    cv::polylines(img, std::vector<std::vector<cv::Point>>{pts}, true, cv::Scalar(0, 220, 255), 2);
    cv::putText(img, z.id, pts.front() + cv::Point(3, 14), cv::FONT_HERSHEY_SIMPLEX, 0.45, cv::Scalar(0, 220, 255), 1);
  }
  const cv::Rect r(static_cast<int>(box[0] * img.cols), static_cast<int>(box[1] * img.rows),
                   std::max(1, static_cast<int>(box[2] * img.cols)), std::max(1, static_cast<int>(box[3] * img.rows)));
  cv::rectangle(img, r, cv::Scalar(0, 0, 255), 2);
  cv::putText(img, label, cv::Point(r.x, std::max(12, r.y - 4)), cv::FONT_HERSHEY_SIMPLEX, 0.5, cv::Scalar(0, 0, 255),
              1);
  std::vector<uchar> out;
  cv::imencode(".jpg", img, out, {cv::IMWRITE_JPEG_QUALITY, 85});
  return std::string(out.begin(), out.end());
}

}  // namespace cityloop::detect::camera
