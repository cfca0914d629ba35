// A C entry point to ssd_postprocess.hpp (for ctypes and plain-C callers).
//   floats: iou_threshold, score_threshold, scale_factors[4], logit_scale, clip_window[4]   (11 values)
//   ints:   max_per_class, max_total, softmax (0: sigmoid, 1: softmax)                        (3 values)
// Outputs hold max_total entries; returns the number of detections written.
#include "ssd_postprocess.hpp"

extern "C" int ssd_postprocess_run(const float* box_encodings, const float* class_logits, const float* anchors,
                                   int num_anchors, int columns, const float* floats, const int* ints,
                                   float* boxes, float* scores, int* labels, int* anchor_index) {
  ssd_postprocess::Settings s;
  s.iou_threshold = floats[0];
  s.score_threshold = floats[1];
  for (int k = 0; k < 4; ++k) s.scale_factors[k] = floats[2 + k];
  s.logit_scale = floats[6];
  for (int k = 0; k < 4; ++k) s.clip_window[k] = floats[7 + k];
  s.max_per_class = ints[0];
  s.max_total = ints[1];
  s.softmax = ints[2] != 0;
  std::vector<ssd_postprocess::Detection> out(s.max_total > 0 ? s.max_total : 1);
  const int n = ssd_postprocess::postprocess(box_encodings, class_logits, anchors, num_anchors, columns, s, out.data());
  for (int i = 0; i < n; ++i) {
    for (int k = 0; k < 4; ++k) boxes[4 * i + k] = out[i].box[k];
    scores[i] = out[i].score;
    labels[i] = out[i].label;
    anchor_index[i] = out[i].anchor;
  }
  return n;
}
