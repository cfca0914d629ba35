// transpiler.kernels: depthwise convolution -- the per-element work of the CUDA kernels.
//
// Each function computes what one CUDA thread computes for one element.  They are
// __host__ __device__ so that a plain C++ compiler can run the exact GPU index arithmetic
// on the CPU (tests/kernels/dwconv_cuda_emu.cpp does), which checks the CUDA code path on
// machines without a GPU.  Math and layout: see depthwise_conv_cpu.hpp.
#ifndef TK_DEPTHWISE_CONV_CUDA_POINT_HPP_
#define TK_DEPTHWISE_CONV_CUDA_POINT_HPP_

#include "depthwise_conv_cpu.hpp"

#ifdef __CUDACC__
#define TK_HD __host__ __device__ __forceinline__
#else
#define TK_HD inline
#endif

#ifdef __CUDA_ARCH__  // device pass: read-only cache loads (sm_35+), unrolled taps
#if __CUDA_ARCH__ >= 350
#define TK_LDG(p) __ldg(p)
#else
#define TK_LDG(p) (*(p))
#endif
#define TK_UNROLL _Pragma("unroll")
#else
#define TK_LDG(p) (*(p))
#define TK_UNROLL
#endif

namespace tk {

// y[idx] for the flat NCHW output index idx.  KH/KW > 0: compile-time kernel size.
template <typename T, typename I, int KH, int KW>
TK_HD T dw_forward_point(const DepthwiseGeometry& g, const T* x, const T* w, const T* b, I idx) {
  const int kh = KH > 0 ? KH : g.kernel_h;
  const int kw = KW > 0 ? KW : g.kernel_w;
  const int oc_total = g.channels * g.multiplier;
  const int j = static_cast<int>(idx % g.out_w);
  I t = idx / g.out_w;
  const int i = static_cast<int>(t % g.out_h);
  t /= g.out_h;
  const int o = static_cast<int>(t % oc_total);
  const I n = t / oc_total;
  const int c = o / g.multiplier;
  const T* xin = x + (n * g.channels + c) * (static_cast<I>(g.height) * g.width);
  const T* wk = w + o * kh * kw;
  T acc = b ? TK_LDG(b + o) : T(0);
  const int iy0 = i * g.stride_h - g.pad_top;
  const int ix0 = j * g.stride_w - g.pad_left;
  if (iy0 >= 0 && ix0 >= 0 && iy0 + (kh - 1) * g.dilation_h < g.height &&
      ix0 + (kw - 1) * g.dilation_w < g.width) {
    // Window wholly inside the image: no bounds tests.
    const T* xr = xin + iy0 * g.width + ix0;
TK_UNROLL
    for (int p = 0; p < kh; ++p) {
TK_UNROLL
      for (int q = 0; q < kw; ++q) acc += TK_LDG(wk + p * kw + q) * TK_LDG(xr + q * g.dilation_w);
      xr += g.dilation_h * g.width;
    }
  } else {
TK_UNROLL
    for (int p = 0; p < kh; ++p) {
      const int iy = iy0 + p * g.dilation_h;
      if (iy < 0 || iy >= g.height) continue;
      const T* xr = xin + iy * g.width;
TK_UNROLL
      for (int q = 0; q < kw; ++q) {
        const int ix = ix0 + q * g.dilation_w;
        if (ix >= 0 && ix < g.width) acc += TK_LDG(wk + p * kw + q) * TK_LDG(xr + ix);
      }
    }
  }
  return acc;
}

// Strip variant of the forward for 3x3-like kernels with dilation 1 and equal strides S (compile time):
// one thread computes V consecutive outputs y[n, o, i, j0 .. j0+V-1] of strip `sidx` (the strips of an
// output row are ceil(OW / V) long).  Interior strips load each needed input row segment once into
// registers, (V-1)*S + KW values, and reuse it for all V outputs and KW taps; strips touching the
// border, or the short last strip of a row, fall back to dw_forward_point for each output.
// Per output the summation order (bias, then p, then q) equals dw_forward_point's.
template <typename T, typename I, int KH, int KW, int S, int V>
TK_HD void dw_forward_strip(const DepthwiseGeometry& g, const T* x, const T* w, const T* b, T* y, I sidx) {
  const int oc_total = g.channels * g.multiplier;
  const int strips = (g.out_w + V - 1) / V;
  const int js = static_cast<int>(sidx % strips);
  I t = sidx / strips;
  const int i = static_cast<int>(t % g.out_h);
  t /= g.out_h;
  const int o = static_cast<int>(t % oc_total);
  const I n = t / oc_total;
  const int j0 = js * V;
  const I row = ((n * oc_total + o) * g.out_h + i) * static_cast<I>(g.out_w) + j0;  // flat index of y[n,o,i,j0]
  const int iy0 = i * S - g.pad_top;
  const int ix0 = j0 * S - g.pad_left;
  const int nv = g.out_w - j0 < V ? g.out_w - j0 : V;
  if (nv < V || iy0 < 0 || ix0 < 0 || iy0 + KH > g.height || ix0 + (V - 1) * S + KW > g.width) {
    for (int v = 0; v < nv; ++v) y[row + v] = dw_forward_point<T, I, KH, KW>(g, x, w, b, row + v);
    return;
  }
  const int c = o / g.multiplier;
  const T* xr = x + (n * g.channels + c) * (static_cast<I>(g.height) * g.width) + iy0 * g.width + ix0;
  const T* wk = w + o * KH * KW;
  const T bias = b ? TK_LDG(b + o) : T(0);
  T acc[V];
  TK_UNROLL
  for (int v = 0; v < V; ++v) acc[v] = bias;
  TK_UNROLL
  for (int p = 0; p < KH; ++p) {
    T r[(V - 1) * S + KW];
    TK_UNROLL
    for (int k = 0; k < (V - 1) * S + KW; ++k) r[k] = TK_LDG(xr + k);
    TK_UNROLL
    for (int q = 0; q < KW; ++q) {
      const T wv = TK_LDG(wk + p * KW + q);
      TK_UNROLL
      for (int v = 0; v < V; ++v) acc[v] += wv * r[v * S + q];
    }
    xr += g.width;
  }
  TK_UNROLL
  for (int v = 0; v < V; ++v) y[row + v] = acc[v];
}

// Whether the strip variant applies: 3x3 kernel, dilation 1, equal strides 1 or 2.
inline bool dw_strip_applies(const DepthwiseGeometry& g) {
  return g.kernel_h == 3 && g.kernel_w == 3 && g.dilation_h == 1 && g.dilation_w == 1 &&
         g.stride_h == g.stride_w && (g.stride_h == 1 || g.stride_h == 2);
}

// Outputs per thread chosen by the launcher: 4 on wide rows, 2 on medium ones, else 1 (point kernel).
inline int dw_default_vec(const DepthwiseGeometry& g) {
  if (!dw_strip_applies(g)) return 1;
  if (g.out_w >= 16) return 4;
  if (g.out_w >= 4) return 2;
  return 1;
}

// dx[idx] for the flat NCHW input index idx: gathers every output whose window covers it.
template <typename T, typename I, int KH, int KW>
TK_HD T dw_backward_data_point(const DepthwiseGeometry& g, const T* dy, const T* w, I idx) {
  const int kh = KH > 0 ? KH : g.kernel_h;
  const int kw = KW > 0 ? KW : g.kernel_w;
  const int oc_total = g.channels * g.multiplier;
  const I out_plane = static_cast<I>(g.out_h) * g.out_w;
  const int ix = static_cast<int>(idx % g.width);
  I t = idx / g.width;
  const int iy = static_cast<int>(t % g.height);
  t /= g.height;
  const int c = static_cast<int>(t % g.channels);
  const I n = t / g.channels;
  T acc = T(0);
  for (int m = 0; m < g.multiplier; ++m) {
    const int o = c * g.multiplier + m;
    const T* dyp = dy + (n * oc_total + o) * out_plane;
    const T* wk = w + o * kh * kw;
TK_UNROLL
    for (int p = 0; p < kh; ++p) {
      const int ty = iy + g.pad_top - p * g.dilation_h;  // must equal i * stride_h
      if (ty < 0) break;
      if (ty % g.stride_h != 0) continue;
      const int i = ty / g.stride_h;
      if (i >= g.out_h) continue;
TK_UNROLL
      for (int q = 0; q < kw; ++q) {
        const int tx = ix + g.pad_left - q * g.dilation_w;  // must equal j * stride_w
        if (tx < 0) break;
        if (tx % g.stride_w != 0) continue;
        const int j = tx / g.stride_w;
        if (j >= g.out_w) continue;
        acc += TK_LDG(wk + p * kw + q) * TK_LDG(dyp + i * g.out_w + j);
      }
    }
  }
  return acc;
}

// Term t (flat over batch and output pixels) of dL/dw[o, k]: dy[n,o,i,j] * x[n, o/M, iy, ix].
template <typename T, typename I>
TK_HD T dw_backward_weight_term(const DepthwiseGeometry& g, const T* dy, const T* x, int o, int k, I t) {
  const int p = k / g.kernel_w;
  const int q = k % g.kernel_w;
  const int c = o / g.multiplier;
  const int oc_total = g.channels * g.multiplier;
  const I out_plane = static_cast<I>(g.out_h) * g.out_w;
  const I in_plane = static_cast<I>(g.height) * g.width;
  const I n = t / out_plane;
  const int r = static_cast<int>(t % out_plane);
  const int i = r / g.out_w;
  const int j = r % g.out_w;
  const int iy = i * g.stride_h - g.pad_top + p * g.dilation_h;
  const int ix = j * g.stride_w - g.pad_left + q * g.dilation_w;
  if (iy < 0 || iy >= g.height || ix < 0 || ix >= g.width) return T(0);
  return TK_LDG(dy + (n * oc_total + o) * out_plane + r) *
         TK_LDG(x + (n * g.channels + c) * in_plane + iy * g.width + ix);
}

// Term t (flat over batch and output pixels) of dL/db[o]: dy[n,o,i,j].
template <typename T, typename I>
TK_HD T dw_backward_bias_term(const DepthwiseGeometry& g, const T* dy, int o, I t) {
  const int oc_total = g.channels * g.multiplier;
  const I out_plane = static_cast<I>(g.out_h) * g.out_w;
  const I n = t / out_plane;
  const I r = t % out_plane;
  return TK_LDG(dy + (n * oc_total + o) * out_plane + r);
}

}  // namespace tk

#endif  // TK_DEPTHWISE_CONV_CUDA_POINT_HPP_
