// transpiler.kernels: depthwise convolution -- CPU math and its C ABI.
//
// Direct convolution, one output row at a time: for every kernel tap (p, q) whose input row
// exists, y_row[j] += w[o,p,q] * x_row[j*SW - pad_left + q*DW] over the precomputed range of j
// whose input column exists.  No im2col buffer; for stride 1 the inner loop is a contiguous
// axpy the compiler vectorises.  Backward-data is the transposed scatter of the same loops;
// weight and bias gradients are reductions accumulated in double.
#include "depthwise_conv_cpu.hpp"

#include <cstring>
#include <vector>

namespace tk {
namespace {

// Valid output-column range [lo[q], hi[q]) for each kernel column q.
void column_ranges(const DepthwiseGeometry& g, std::vector<int>* lo, std::vector<int>* hi) {
  lo->assign(g.kernel_w, 0);
  hi->assign(g.kernel_w, 0);
  for (int q = 0; q < g.kernel_w; ++q) {
    const int off = q * g.dilation_w - g.pad_left;  // ix = j*SW + off
    int l = off >= 0 ? 0 : (-off + g.stride_w - 1) / g.stride_w;
    int h = off > g.width - 1 ? 0 : (g.width - 1 - off) / g.stride_w + 1;
    if (h > g.out_w) h = g.out_w;
    if (l > h) l = h;
    (*lo)[q] = l;
    (*hi)[q] = h;
  }
}

}  // namespace

template <typename T>
void depthwise_conv_forward_cpu(const DepthwiseGeometry& g, const T* x, const T* w, const T* b, T* y) {
  const int oc_total = g.channels * g.multiplier;
  const long in_plane = static_cast<long>(g.height) * g.width;
  const long out_plane = static_cast<long>(g.out_h) * g.out_w;
  const int ktaps = g.kernel_h * g.kernel_w;
  std::vector<int> lo, hi;
  column_ranges(g, &lo, &hi);
  for (int n = 0; n < g.num; ++n) {
    for (int o = 0; o < oc_total; ++o) {
      const int c = o / g.multiplier;
      const T* xin = x + (static_cast<long>(n) * g.channels + c) * in_plane;
      T* yout = y + (static_cast<long>(n) * oc_total + o) * out_plane;
      const T* wk = w + static_cast<long>(o) * ktaps;
      const T bias = b ? b[o] : T(0);
      for (int i = 0; i < g.out_h; ++i) {
        T* yrow = yout + static_cast<long>(i) * g.out_w;
        for (int j = 0; j < g.out_w; ++j) yrow[j] = bias;
        for (int p = 0; p < g.kernel_h; ++p) {
          const int iy = i * g.stride_h - g.pad_top + p * g.dilation_h;
          if (iy < 0 || iy >= g.height) continue;
          const T* xrow = xin + static_cast<long>(iy) * g.width;
          for (int q = 0; q < g.kernel_w; ++q) {
            const T wv = wk[p * g.kernel_w + q];
            const int off = q * g.dilation_w - g.pad_left;
            const int l = lo[q], h = hi[q];
            if (g.stride_w == 1) {
              const T* xs = xrow + off;
              for (int j = l; j < h; ++j) yrow[j] += wv * xs[j];
            } else {
              for (int j = l; j < h; ++j) yrow[j] += wv * xrow[j * g.stride_w + off];
            }
          }
        }
      }
    }
  }
}

template <typename T>
void depthwise_conv_backward_data_cpu(const DepthwiseGeometry& g, const T* dy, const T* w, T* dx) {
  const int oc_total = g.channels * g.multiplier;
  const long in_plane = static_cast<long>(g.height) * g.width;
  const long out_plane = static_cast<long>(g.out_h) * g.out_w;
  const int ktaps = g.kernel_h * g.kernel_w;
  std::vector<int> lo, hi;
  column_ranges(g, &lo, &hi);
  std::memset(dx, 0, sizeof(T) * static_cast<size_t>(g.num) * g.channels * in_plane);
  for (int n = 0; n < g.num; ++n) {
    for (int o = 0; o < oc_total; ++o) {
      const int c = o / g.multiplier;
      T* dxin = dx + (static_cast<long>(n) * g.channels + c) * in_plane;
      const T* dyout = dy + (static_cast<long>(n) * oc_total + o) * out_plane;
      const T* wk = w + static_cast<long>(o) * ktaps;
      for (int i = 0; i < g.out_h; ++i) {
        const T* dyrow = dyout + static_cast<long>(i) * g.out_w;
        for (int p = 0; p < g.kernel_h; ++p) {
          const int iy = i * g.stride_h - g.pad_top + p * g.dilation_h;
          if (iy < 0 || iy >= g.height) continue;
          T* dxrow = dxin + static_cast<long>(iy) * g.width;
          for (int q = 0; q < g.kernel_w; ++q) {
            const T wv = wk[p * g.kernel_w + q];
            const int off = q * g.dilation_w - g.pad_left;
            for (int j = lo[q]; j < hi[q]; ++j) dxrow[j * g.stride_w + off] += wv * dyrow[j];
          }
        }
      }
    }
  }
}

template <typename T>
void depthwise_conv_backward_weight_cpu(const DepthwiseGeometry& g, const T* dy, const T* x, T* dw) {
  const int oc_total = g.channels * g.multiplier;
  const long in_plane = static_cast<long>(g.height) * g.width;
  const long out_plane = static_cast<long>(g.out_h) * g.out_w;
  const int ktaps = g.kernel_h * g.kernel_w;
  std::vector<int> lo, hi;
  column_ranges(g, &lo, &hi);
  std::vector<double> acc(ktaps);
  for (int o = 0; o < oc_total; ++o) {
    const int c = o / g.multiplier;
    for (int k = 0; k < ktaps; ++k) acc[k] = 0.0;
    for (int n = 0; n < g.num; ++n) {
      const T* xin = x + (static_cast<long>(n) * g.channels + c) * in_plane;
      const T* dyout = dy + (static_cast<long>(n) * oc_total + o) * out_plane;
      for (int i = 0; i < g.out_h; ++i) {
        const T* dyrow = dyout + static_cast<long>(i) * g.out_w;
        for (int p = 0; p < g.kernel_h; ++p) {
          const int iy = i * g.stride_h - g.pad_top + p * g.dilation_h;
          if (iy < 0 || iy >= g.height) continue;
          const T* xrow = xin + static_cast<long>(iy) * g.width;
          for (int q = 0; q < g.kernel_w; ++q) {
            const int off = q * g.dilation_w - g.pad_left;
            double s = 0.0;
            for (int j = lo[q]; j < hi[q]; ++j) {
              s += static_cast<double>(dyrow[j]) * static_cast<double>(xrow[j * g.stride_w + off]);
            }
            acc[p * g.kernel_w + q] += s;
          }
        }
      }
    }
    T* dwk = dw + static_cast<long>(o) * ktaps;
    for (int k = 0; k < ktaps; ++k) dwk[k] += static_cast<T>(acc[k]);
  }
}

template <typename T>
void depthwise_conv_backward_bias_cpu(const DepthwiseGeometry& g, const T* dy, T* db) {
  const int oc_total = g.channels * g.multiplier;
  const long out_plane = static_cast<long>(g.out_h) * g.out_w;
  for (int o = 0; o < oc_total; ++o) {
    double s = 0.0;
    for (int n = 0; n < g.num; ++n) {
      const T* dyout = dy + (static_cast<long>(n) * oc_total + o) * out_plane;
      for (long k = 0; k < out_plane; ++k) s += static_cast<double>(dyout[k]);
    }
    db[o] += static_cast<T>(s);
  }
}

template void depthwise_conv_forward_cpu<float>(const DepthwiseGeometry&, const float*, const float*,
                                                const float*, float*);
template void depthwise_conv_forward_cpu<double>(const DepthwiseGeometry&, const double*, const double*,
                                                 const double*, double*);
template void depthwise_conv_backward_data_cpu<float>(const DepthwiseGeometry&, const float*, const float*,
                                                      float*);
template void depthwise_conv_backward_data_cpu<double>(const DepthwiseGeometry&, const double*,
                                                       const double*, double*);
template void depthwise_conv_backward_weight_cpu<float>(const DepthwiseGeometry&, const float*,
                                                        const float*, float*);
template void depthwise_conv_backward_weight_cpu<double>(const DepthwiseGeometry&, const double*,
                                                         const double*, double*);
template void depthwise_conv_backward_bias_cpu<float>(const DepthwiseGeometry&, const float*, float*);
template void depthwise_conv_backward_bias_cpu<double>(const DepthwiseGeometry&, const double*, double*);

}  // namespace tk

// ---------------------------------------------------------------------------------------------
// C ABI
// ---------------------------------------------------------------------------------------------
namespace {

template <typename T>
int abi_forward(const int* geom, const T* x, const T* w, const T* b, T* y) {
  tk::DepthwiseGeometry g;
  if (tk::depthwise_geometry_init(geom, &g) != 0) return -1;
  tk::depthwise_conv_forward_cpu<T>(g, x, w, b, y);
  return 0;
}

template <typename T>
int abi_backward_data(const int* geom, const T* dy, const T* w, T* dx) {
  tk::DepthwiseGeometry g;
  if (tk::depthwise_geometry_init(geom, &g) != 0) return -1;
  tk::depthwise_conv_backward_data_cpu<T>(g, dy, w, dx);
  return 0;
}

template <typename T>
int abi_backward_weight(const int* geom, const T* dy, const T* x, T* dw) {
  tk::DepthwiseGeometry g;
  if (tk::depthwise_geometry_init(geom, &g) != 0) return -1;
  tk::depthwise_conv_backward_weight_cpu<T>(g, dy, x, dw);
  return 0;
}

template <typename T>
int abi_backward_bias(const int* geom, const T* dy, T* db) {
  tk::DepthwiseGeometry g;
  if (tk::depthwise_geometry_init(geom, &g) != 0) return -1;
  tk::depthwise_conv_backward_bias_cpu<T>(g, dy, db);
  return 0;
}

}  // namespace

extern "C" {

int tk_dwconv_output_size(const int* geom, int* out_hw) {
  tk::DepthwiseGeometry g;
  const int rc = tk::depthwise_geometry_init(geom, &g);
  out_hw[0] = g.out_h;
  out_hw[1] = g.out_w;
  return rc;
}

int tk_dwconv_forward_f32(const int* geom, const float* x, const float* w, const float* b, float* y) {
  return abi_forward<float>(geom, x, w, b, y);
}
int tk_dwconv_backward_data_f32(const int* geom, const float* dy, const float* w, float* dx) {
  return abi_backward_data<float>(geom, dy, w, dx);
}
int tk_dwconv_backward_weight_f32(const int* geom, const float* dy, const float* x, float* dw) {
  return abi_backward_weight<float>(geom, dy, x, dw);
}
int tk_dwconv_backward_bias_f32(const int* geom, const float* dy, float* db) {
  return abi_backward_bias<float>(geom, dy, db);
}
int tk_dwconv_forward_f64(const int* geom, const double* x, const double* w, const double* b, double* y) {
  return abi_forward<double>(geom, x, w, b, y);
}
int tk_dwconv_backward_data_f64(const int* geom, const double* dy, const double* w, double* dx) {
  return abi_backward_data<double>(geom, dy, w, dx);
}
int tk_dwconv_backward_weight_f64(const int* geom, const double* dy, const double* x, double* dw) {
  return abi_backward_weight<double>(geom, dy, x, dw);
}
int tk_dwconv_backward_bias_f64(const int* geom, const double* dy, double* db) {
  return abi_backward_bias<double>(geom, dy, db);
}

}  // extern "C"
