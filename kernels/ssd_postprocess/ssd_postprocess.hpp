// TF Object Detection API SSD postprocessing, exactly as TensorFlow computes it: header-only C++11, no
// dependencies. The C++ twin of transpiler/runtime/ssd_postprocess.py (same steps, same float32 operations in
// the same order; exp and the score converters are evaluated in double and rounded once to float, as there), for
// models converted with `--postprocess external`:
//
//   box_encodings  [A*4]      the net's `mbox_loc` blob: per anchor [ty, tx, th, tw] (TF's Squeeze:0)
//   class_logits   [A*(C+1)]  the net's `mbox_conf_logits` blob: background first (TF's concat_1:0)
//   anchors        [A*4]      priors.bin (or priors.npy): per anchor [ymin, xmin, ymax, xmax], normalised
//   settings                  conversion.json's "postprocess" section
//
// 1. decode (FasterRcnnBoxCoder): h_a = ymax - ymin, y_a = ymin + h_a/2 (likewise x, w); ty = e0/s0, tx = e1/s1,
//    th = e2/s2, tw = e3/s3; h = exp(th)*h_a, w = exp(tw)*w_a, y = ty*h_a + y_a, x = tx*w_a + x_a;
//    box [y - h/2, x - w/2, y + h/2, x + w/2];
// 2. scores: logits / logit_scale -> sigmoid (or softmax over all C+1 columns), background column dropped;
// 3. per class, TF's NonMaxSuppressionV3/V5: candidates with score > score_threshold, best first (equal scores:
//    lower anchor first), selected unless IoU > iou_threshold with a box already selected in the class (IoU as TF:
//    corners ordered, inter / (area_i + area_j - inter), 0 if either box is empty), at most max_per_class;
// 4. all classes' selections by score (equal scores: lower class first), clipped to the window, zero-area boxes
//    dropped, the first max_total kept.
// Steps 3-4 run lazily (a heap of each class's next candidate), so only the candidates that can reach the output
// are visited. Compile without -ffast-math and with -ffp-contract=off (no fused multiply-add) to get numpy's
// float32 results bit for bit.
#ifndef SSD_POSTPROCESS_HPP
#define SSD_POSTPROCESS_HPP

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <queue>
#include <vector>

namespace ssd_postprocess {

struct Settings {
  float iou_threshold = 0.6f;
  float score_threshold = 1e-8f;
  int max_per_class = 100;
  int max_total = 100;
  float scale_factors[4] = {10.0f, 10.0f, 5.0f, 5.0f};
  bool softmax = false;  // false: sigmoid
  float logit_scale = 1.0f;
  float clip_window[4] = {0.0f, 0.0f, 1.0f, 1.0f};  // ymin, xmin, ymax, xmax
};

struct Detection {
  float box[4];  // ymin, xmin, ymax, xmax (clipped, normalised)
  float score;
  int label;     // 1-based, as TF's detection_classes
  int anchor;    // the anchor (row of priors.bin) it was decoded from
};

// Boxes [A*4] decoded from box_encodings with anchors.
inline void decode_boxes(const float* enc, const float* anchors, int num_anchors, const float scale[4], float* out) {
  const float two = 2.0f;
  for (int a = 0; a < num_anchors; ++a) {
    const float* an = anchors + 4 * a;
    const float* e = enc + 4 * a;
    const float ha = an[2] - an[0], wa = an[3] - an[1];
    const float yca = an[0] + ha / two, xca = an[1] + wa / two;
    const float ty = e[0] / scale[0], tx = e[1] / scale[1], th = e[2] / scale[2], tw = e[3] / scale[3];
    const float h = static_cast<float>(std::exp(static_cast<double>(th))) * ha;
    const float w = static_cast<float>(std::exp(static_cast<double>(tw))) * wa;
    const float yc = ty * ha + yca, xc = tx * wa + xca;
    float* o = out + 4 * a;
    o[0] = yc - h / two;
    o[1] = xc - w / two;
    o[2] = yc + h / two;
    o[3] = xc + w / two;
  }
}

// The score of one logit column value (sigmoid), or of column c of one anchor's row (softmax).
inline float sigmoid_score(float logit, const Settings& s) {
  float v = logit;
  if (s.logit_scale != 1.0f) v = v / s.logit_scale;
  return static_cast<float>(1.0 / (1.0 + std::exp(-static_cast<double>(v))));
}

inline void softmax_row(const float* x, int columns, const Settings& s, float* out) {
  std::vector<double> row(columns);
  double top = 0.0;
  for (int c = 0; c < columns; ++c) {
    float v = x[c];
    if (s.logit_scale != 1.0f) v = v / s.logit_scale;
    row[c] = static_cast<double>(v);
    top = c == 0 ? row[c] : std::max(top, row[c]);
  }
  double sum = 0.0;
  for (int c = 0; c < columns; ++c) {
    row[c] = std::exp(row[c] - top);
    sum += row[c];
  }
  for (int c = 0; c < columns; ++c) out[c] = static_cast<float>(row[c] / sum);
}

// Scores of class c (1-based logit column) for every anchor, into out[A].
inline void class_scores(const float* logits, int num_anchors, int columns, int c, const Settings& s,
                         const std::vector<float>& softmax, float* out) {
  for (int a = 0; a < num_anchors; ++a) {
    const long at = static_cast<long>(a) * columns + c;
    out[a] = s.softmax ? softmax[at] : sigmoid_score(logits[at], s);
  }
}

namespace detail {

const size_t kChunk = 64;  // candidates ordered at a time: a class rarely needs more than its best few dozen

struct ClassNMS {
  std::vector<int> rest;       // candidates not ordered yet (ascending anchor index)
  std::vector<int> order;      // the current chunk, best first
  std::vector<int> selected;   // selected anchors
  size_t pos = 0;
};

// Orders the next chunk: every remaining candidate scoring at least the kChunk-th best (equal scores are never
// split between chunks), best first, equal scores by lower anchor index.
inline void order_next_chunk(ClassNMS& st, const float* sc) {
  std::vector<int> chunk;
  if (st.rest.size() > kChunk) {
    std::vector<float> v(st.rest.size());
    for (size_t k = 0; k < v.size(); ++k) v[k] = sc[st.rest[k]];
    std::nth_element(v.begin(), v.begin() + (kChunk - 1), v.end(), std::greater<float>());
    const float cut = v[kChunk - 1];
    std::vector<int> keep;
    for (size_t k = 0; k < st.rest.size(); ++k) (sc[st.rest[k]] >= cut ? chunk : keep).push_back(st.rest[k]);
    st.rest.swap(keep);
  } else {
    chunk.swap(st.rest);
    st.rest.clear();
  }
  std::sort(chunk.begin(), chunk.end(), [sc](int x, int y) { return sc[x] > sc[y] || (sc[x] == sc[y] && x < y); });
  st.order.swap(chunk);
  st.pos = 0;
}

// The next candidate of a class, ordering a new chunk when needed; -1 when the class is done.
inline int next_candidate(ClassNMS& st, const float* sc, int max_per_class) {
  if (static_cast<int>(st.selected.size()) >= max_per_class) return -1;
  if (st.pos >= st.order.size()) {
    if (st.rest.empty()) return -1;
    order_next_chunk(st, sc);
  }
  return st.order[st.pos];
}

// IoU of boxes i and j (ordered corners, areas precomputed) as TF's NMS kernel computes it.
inline float iou(const float* bi, float area_i, const float* bj, float area_j) {
  if (area_i <= 0.0f || area_j <= 0.0f) return 0.0f;
  const float ih = std::max(std::min(bi[2], bj[2]) - std::max(bi[0], bj[0]), 0.0f);
  const float iw = std::max(std::min(bi[3], bj[3]) - std::max(bi[1], bj[1]), 0.0f);
  const float inter = ih * iw;
  return inter / ((area_i + area_j) - inter);
}

struct Entry {
  float score;
  int label;  // 0-based class
  int anchor;
  bool operator<(const Entry& o) const {  // priority_queue pops the largest: best score, then lowest class
    if (score != o.score) return score < o.score;
    return label > o.label;
  }
};

}  // namespace detail

// Runs steps 1-4; writes at most settings.max_total detections to out, best first; returns their count.
inline int postprocess(const float* box_encodings, const float* class_logits, const float* anchors, int num_anchors,
                       int columns, const Settings& s, Detection* out) {
  const int classes = columns - 1;
  std::vector<float> boxes(4 * static_cast<size_t>(num_anchors)), ordered(boxes.size()), area(num_anchors);
  decode_boxes(box_encodings, anchors, num_anchors, s.scale_factors, boxes.data());
  for (int a = 0; a < num_anchors; ++a) {
    const float* b = &boxes[4 * a];
    float* o = &ordered[4 * a];
    o[0] = std::min(b[0], b[2]);
    o[1] = std::min(b[1], b[3]);
    o[2] = std::max(b[0], b[2]);
    o[3] = std::max(b[1], b[3]);
    area[a] = (o[2] - o[0]) * (o[3] - o[1]);
  }
  // Scores are computed per class when the class is first visited. The sigmoid is monotonic, so a class's best
  // score, which orders the heap, is the sigmoid of its largest logit (the same float as the largest score).
  std::vector<float> softmax;
  if (s.softmax) {
    softmax.resize(static_cast<size_t>(columns) * num_anchors);
    for (int a = 0; a < num_anchors; ++a)
      softmax_row(class_logits + static_cast<long>(a) * columns, columns, s, &softmax[static_cast<size_t>(a) * columns]);
  }
  std::vector<float> scores(static_cast<size_t>(classes) * num_anchors);
  std::vector<detail::ClassNMS> state(classes);
  std::vector<bool> started(classes, false);
  std::priority_queue<detail::Entry> heap;
  if (s.max_per_class > 0) {
    for (int c = 0; c < classes; ++c) {
      float best = 0.0f;
      for (int a = 0; a < num_anchors; ++a) {
        const long at = static_cast<long>(a) * columns + c + 1;
        const float v = s.softmax ? softmax[at] : class_logits[at];
        best = a == 0 ? v : std::max(best, v);
      }
      const float score = s.softmax ? best : sigmoid_score(best, s);
      if (num_anchors > 0 && score > s.score_threshold) heap.push(detail::Entry{score, c, -1});
    }
  }
  const float lo[4] = {s.clip_window[0], s.clip_window[1], s.clip_window[0], s.clip_window[1]};
  const float hi[4] = {s.clip_window[2], s.clip_window[3], s.clip_window[2], s.clip_window[3]};
  int n = 0;
  while (!heap.empty() && n < s.max_total) {
    const detail::Entry e = heap.top();
    heap.pop();
    const int c = e.label;
    const float* sc = &scores[static_cast<size_t>(c) * num_anchors];
    detail::ClassNMS& st = state[c];
    if (!started[c]) {
      started[c] = true;
      class_scores(class_logits, num_anchors, columns, c + 1, s, softmax, &scores[static_cast<size_t>(c) * num_anchors]);
      for (int a = 0; a < num_anchors; ++a)
        if (sc[a] > s.score_threshold) st.rest.push_back(a);
    }
    const int i = detail::next_candidate(st, sc, s.max_per_class);
    ++st.pos;
    bool keep = true;
    for (size_t k = 0; k < st.selected.size() && keep; ++k) {
      const int j = st.selected[k];
      keep = !(detail::iou(&ordered[4 * i], area[i], &ordered[4 * j], area[j]) > s.iou_threshold);
    }
    if (keep) {
      st.selected.push_back(i);
      Detection d;
      for (int k = 0; k < 4; ++k) d.box[k] = std::max(std::min(boxes[4 * i + k], hi[k]), lo[k]);
      if ((d.box[2] - d.box[0]) * (d.box[3] - d.box[1]) > 0.0f) {
        d.score = sc[i];
        d.label = c + 1;
        d.anchor = i;
        out[n++] = d;
      }
    }
    const int next = detail::next_candidate(st, sc, s.max_per_class);
    if (next >= 0) heap.push(detail::Entry{sc[next], c, next});
  }
  return n;
}

// Reads priors.bin (A*4 little-endian float32, no header) into anchors; false on a read error.
inline bool read_priors(const char* path, std::vector<float>& anchors) {
  std::FILE* f = std::fopen(path, "rb");
  if (!f) return false;
  std::fseek(f, 0, SEEK_END);
  const long bytes = std::ftell(f);
  std::fseek(f, 0, SEEK_SET);
  if (bytes < 0 || bytes % 16) {
    std::fclose(f);
    return false;
  }
  anchors.resize(static_cast<size_t>(bytes) / sizeof(float));
  const size_t got = std::fread(anchors.data(), sizeof(float), anchors.size(), f);
  std::fclose(f);
  return got == anchors.size();
}

}  // namespace ssd_postprocess

#endif  // SSD_POSTPROCESS_HPP
