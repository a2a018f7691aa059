// Internal to detect/camera: the image models a CameraAnalyzer keeps, and the
// per-frame measurements the zone detectors read. OpenCV lives here.
#pragma once

#include <opencv2/core.hpp>
#include <opencv2/video/background_segm.hpp>
#include <opencv2/video/tracking.hpp>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/config.h"

namespace cityloop::detect::camera {

// Two scales: "analysis" (about camera.analysis_width wide, straight from the
// JPEG's DCT scaling) for colour, templates and the dual background; "small"
// (half as wide) for the motion gate, MOG2 and the tamper checks.
struct FrameImages {
  int64_t ts_ms = 0;
  double dt_s = 0;        // since the previous analysed frame
  std::string_view jpeg;  // the original bytes
  cv::Mat colour;         // analysis scale, BGR
  cv::Mat grey;           // analysis scale
  cv::Mat small;          // small scale, grey
};

// Tamper measurements of one frame (small scale).
struct TamperReadings {
  double entropy = 8;      // bits, of the grey histogram
  double stddev = 64;
  double sharpness = 0;    // Laplacian variance
  double shift_px = 0;     // phaseCorrelate against the long-term background
  bool identical = false;  // same bytes as the previous frame
};

// Everything learnt from past frames. Rebuilt from scratch on a light change.
class BackgroundModels {
 public:
  // Starts afresh from f; the long-term model is the mean of the next
  // mean_frames frames.
  void Reset(const FrameImages& f, int mean_frames);
  bool ready() const { return !long_bg_.empty(); }
  // Share of the (unmasked) small frame that changed against the running
  // average; moves the average on.
  double UpdateMotion(const FrameImages& f, const cv::Mat& valid_small, int threshold, double alpha,
                      cv::Mat* changed);
  // MOG2 foreground at small scale (opened), masked.
  void Foreground(const FrameImages& f, const cv::Mat& valid_small, cv::Mat* fg);
  // Analysis scale: pixels far from the long-term background (something is
  // there that was not) and, of those, the ones close to the short-term one
  // (it has stopped moving).
  void Differences(const FrameImages& f, int threshold, cv::Mat* occupied, cv::Mat* still);
  // Learns the frame into the short-term model everywhere, and into the
  // long-term one: right after a reset as a running mean (so what passed by
  // leaves no ghost), then where the frame looks like background, ten times
  // slower where something is there (so a real change is learnt in minutes),
  // and not at all under `frozen` (a confirmed object).
  void Learn(const FrameImages& f, const cv::Mat& occupied, const cv::Mat& frozen);
  // Takes the frame as the long-term background inside mask (a ghost: what
  // the model remembers is gone).
  void Forget(const FrameImages& f, const cv::Mat& mask);
  const cv::Mat& long_bg() const { return long_bg_; }
  // Dense flow (DIS, analysis scale, px per frame) from the previous frame
  // inside roi (zero elsewhere); empty before there is a previous frame.
  void Flow(const FrameImages& f, const cv::Rect& roi, cv::Mat* flow);
  void RememberFrame(const FrameImages& f);
  // Camera movement: the shift (small-scale px) between the frame and the
  // long-term background, by phase correlation.
  double MovedShift(const FrameImages& f);
  const cv::Mat& prev_grey() const { return prev_grey_; }
  size_t Bytes() const;

 private:
  cv::Mat motion_avg_;   // small, CV_32F
  cv::Mat short_bg_;     // analysis, CV_32F, follows within a second
  cv::Mat long_bg_;      // analysis, CV_32F, follows over a minute, frozen under objects
  cv::Mat prev_grey_;
  cv::Ptr<cv::BackgroundSubtractorMOG2> mog2_;
  cv::Ptr<cv::DISOpticalFlow> dis_;
  int learnt_ = 0;  // frames since the reset
  int mean_frames_ = 25;
};

// True when the blob (a mask, analysis scale; its box given) is an object
// the background remembers but the frame no longer shows (a "ghost"): its
// outline is an edge in the model, not in the frame.
bool IsGhost(const FrameImages& f, const cv::Mat& long_bg, const cv::Mat& blob, const cv::Rect& box);

// Rasterises a normalised polygon into a mask of the given size.
cv::Mat PolygonMask(const ImagePolygon& poly, cv::Size size);
cv::Rect PolygonBounds(const ImagePolygon& poly, cv::Size size);

TamperReadings ReadTamper(const FrameImages& f);

// Pixels of fire/smoke colour (YCrCb rules), analysis scale, looked for
// inside roi only ("brighter than the scene" means than the roi).
void FireColour(const FrameImages& f, const cv::Rect& roi, cv::Mat* fire);

// People the OpenCV default HOG people detector finds in roi of the
// full-size frame (decoded again from the JPEG; upscaled so a person of
// about a sixth of the frame height fills the 128-pixel window).
int CountPeople(std::string_view jpeg, const ImagePolygon& zone);

// The frame with zone outlines (yellow), masks (grey) and the box (red,
// labelled), as a JPEG.
std::string Annotate(std::string_view jpeg, const Camera& camera, const std::array<double, 4>& box,
                     const std::string& label);

}  // namespace cityloop::detect::camera
