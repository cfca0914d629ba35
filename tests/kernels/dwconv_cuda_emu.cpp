// Test harness: runs the per-element functions of the CUDA depthwise kernels
// (kernels/depthwise_conv/depthwise_conv_cuda_point.hpp) on the CPU, one "thread" after another,
// with the same kernel-size dispatch and 32/64-bit index choice as depthwise_conv_cuda.cu.
// This checks the GPU code path's index arithmetic on machines without a GPU.
#include <climits>

#include "depthwise_conv_cuda_point.hpp"

namespace {

long long in_count(const tk::DepthwiseGeometry& g) {
  return static_cast<long long>(g.num) * g.channels * g.height * g.width;
}
long long out_count(const tk::DepthwiseGeometry& g) {
  return static_cast<long long>(g.num) * g.channels * g.multiplier * g.out_h * g.out_w;
}

template <typename I, int KH, int KW>
void forward(const tk::DepthwiseGeometry& g, const float* x, const float* w, const float* b, float* y) {
  const I total = static_cast<I>(out_count(g));
  for (I idx = 0; idx < total; ++idx) y[idx] = tk::dw_forward_point<float, I, KH, KW>(g, x, w, b, idx);
}

template <typename I, int S, int V>
void strips(const tk::DepthwiseGeometry& g, const float* x, const float* w, const float* b, float* y) {
  const I total = static_cast<I>(g.num) * g.channels * g.multiplier * g.out_h * ((g.out_w + V - 1) / V);
  for (I s = 0; s < total; ++s) tk::dw_forward_strip<float, I, 3, 3, S, V>(g, x, w, b, y, s);
}

template <typename I, int KH, int KW>
void backward_data(const tk::DepthwiseGeometry& g, const float* dy, const float* w, float* dx) {
  const I total = static_cast<I>(in_count(g));
  for (I idx = 0; idx < total; ++idx) dx[idx] = tk::dw_backward_data_point<float, I, KH, KW>(g, dy, w, idx);
}

template <typename I>
void backward_params(const tk::DepthwiseGeometry& g, const float* dy, const float* x, float* dw, float* db) {
  const int ktaps = g.kernel_h * g.kernel_w;
  const I total = static_cast<I>(g.out_h) * g.out_w * g.num;
  for (int o = 0; o < g.channels * g.multiplier; ++o) {
    for (int k = 0; k < ktaps; ++k) {
      float acc = 0.0f;
      for (I t = 0; t < total; ++t) acc += tk::dw_backward_weight_term<float, I>(g, dy, x, o, k, t);
      dw[o * ktaps + k] += acc;
    }
    float acc = 0.0f;
    for (I t = 0; t < total; ++t) acc += tk::dw_backward_bias_term<float, I>(g, dy, o, t);
    db[o] += acc;
  }
}

}  // namespace

extern "C" {

// force64: use the 64-bit index instantiation even for small tensors.
int tk_emu_dwconv_forward_f32(const int* geom, const float* x, const float* w, const float* b, float* y,
                              int force64) {
  tk::DepthwiseGeometry g;
  if (tk::depthwise_geometry_init(geom, &g) != 0) return -1;
  const bool small = !force64 && in_count(g) < INT_MAX && out_count(g) < INT_MAX;
  const bool k3 = g.kernel_h == 3 && g.kernel_w == 3;
  const bool k5 = g.kernel_h == 5 && g.kernel_w == 5;
  if (small) {
    if (k3) forward<int, 3, 3>(g, x, w, b, y);
    else if (k5) forward<int, 5, 5>(g, x, w, b, y);
    else forward<int, -1, -1>(g, x, w, b, y);
  } else {
    if (k3) forward<long long, 3, 3>(g, x, w, b, y);
    else if (k5) forward<long long, 5, 5>(g, x, w, b, y);
    else forward<long long, -1, -1>(g, x, w, b, y);
  }
  return 0;
}

// The strip variant (vec 2 or 4), as depthwise_conv_cuda.cu launches it; -2 if it does not apply.
int tk_emu_dwconv_forward_vec_f32(const int* geom, const float* x, const float* w, const float* b, float* y,
                                  int vec, int force64) {
  tk::DepthwiseGeometry g;
  if (tk::depthwise_geometry_init(geom, &g) != 0) return -1;
  if (!tk::dw_strip_applies(g) || (vec != 2 && vec != 4)) return -2;
  const bool small = !force64 && in_count(g) < INT_MAX && out_count(g) < INT_MAX;
  const bool s1 = g.stride_w == 1;
  if (small) {
    if (vec == 4) s1 ? strips<int, 1, 4>(g, x, w, b, y) : strips<int, 2, 4>(g, x, w, b, y);
    else s1 ? strips<int, 1, 2>(g, x, w, b, y) : strips<int, 2, 2>(g, x, w, b, y);
  } else {
    if (vec == 4) s1 ? strips<long long, 1, 4>(g, x, w, b, y) : strips<long long, 2, 4>(g, x, w, b, y);
    else s1 ? strips<long long, 1, 2>(g, x, w, b, y) : strips<long long, 2, 2>(g, x, w, b, y);
  }
  return 0;
}

int tk_emu_dwconv_default_vec(const int* geom) {
  tk::DepthwiseGeometry g;
  if (tk::depthwise_geometry_init(geom, &g) != 0) return -1;
  return tk::dw_default_vec(g);
}

int tk_emu_dwconv_backward_f32(const int* geom, const float* dy, const float* x, const float* w, float* dx,
                               float* dw, float* db, int force64) {
  tk::DepthwiseGeometry g;
  if (tk::depthwise_geometry_init(geom, &g) != 0) return -1;
  const bool small = !force64 && in_count(g) < INT_MAX && out_count(g) < INT_MAX;
  const bool k3 = g.kernel_h == 3 && g.kernel_w == 3;
  if (small) {
    if (k3) backward_data<int, 3, 3>(g, dy, w, dx);
    else backward_data<int, -1, -1>(g, dy, w, dx);
    backward_params<int>(g, dy, x, dw, db);
  } else {
    if (k3) backward_data<long long, 3, 3>(g, dy, w, dx);
    else backward_data<long long, -1, -1>(g, dy, w, dx);
    backward_params<long long>(g, dy, x, dw, db);
  }
  return 0;
}

}  // extern "C"
