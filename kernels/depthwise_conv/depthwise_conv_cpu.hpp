// transpiler.kernels: depthwise convolution -- geometry and CPU math (no Caffe dependency).
//
// Layout (Caffe's, NCHW):
//   x  : N x C x H x W
//   w  : (C*M) x 1 x KH x KW          output channel o = c*M + m reads input channel c = o / M
//   b  : (C*M)                        optional
//   y  : N x (C*M) x OH x OW
//   OH = (H + pad_top + pad_bottom - (DH*(KH-1) + 1)) / SH + 1   (floor)
//   OW = (W + pad_left + pad_right - (DW*(KW-1) + 1)) / SW + 1
//   y[n,o,i,j] = b[o] + sum_{p<KH, q<KW} w[o,p,q] * x[n, o/M, i*SH - pad_top + p*DH, j*SW - pad_left + q*DW]
// (taps that fall outside the image read zero).
//
// The same header is included by the CUDA side, so it stays plain C++03.
#ifndef TK_DEPTHWISE_CONV_CPU_HPP_
#define TK_DEPTHWISE_CONV_CPU_HPP_

namespace tk {

// Indexes of the 15-int geometry array used by the C ABI.
enum DepthwiseGeomIndex {
  TK_DW_NUM = 0, TK_DW_CHANNELS, TK_DW_MULTIPLIER, TK_DW_HEIGHT, TK_DW_WIDTH,
  TK_DW_KERNEL_H, TK_DW_KERNEL_W, TK_DW_STRIDE_H, TK_DW_STRIDE_W,
  TK_DW_DILATION_H, TK_DW_DILATION_W,
  TK_DW_PAD_TOP, TK_DW_PAD_BOTTOM, TK_DW_PAD_LEFT, TK_DW_PAD_RIGHT,
  TK_DW_GEOM_SIZE
};

struct DepthwiseGeometry {
  int num, channels, multiplier, height, width;
  int kernel_h, kernel_w, stride_h, stride_w, dilation_h, dilation_w;
  int pad_top, pad_bottom, pad_left, pad_right;
  int out_h, out_w;  // derived by depthwise_geometry_init
};

// Fills g from the 15-int array and computes out_h/out_w.
// Returns 0 when the geometry is valid, -1 otherwise (non-positive sizes, negative pads,
// or a kernel that does not fit the padded input).
inline int depthwise_geometry_init(const int* a, DepthwiseGeometry* g) {
  g->num = a[TK_DW_NUM]; g->channels = a[TK_DW_CHANNELS]; g->multiplier = a[TK_DW_MULTIPLIER];
  g->height = a[TK_DW_HEIGHT]; g->width = a[TK_DW_WIDTH];
  g->kernel_h = a[TK_DW_KERNEL_H]; g->kernel_w = a[TK_DW_KERNEL_W];
  g->stride_h = a[TK_DW_STRIDE_H]; g->stride_w = a[TK_DW_STRIDE_W];
  g->dilation_h = a[TK_DW_DILATION_H]; g->dilation_w = a[TK_DW_DILATION_W];
  g->pad_top = a[TK_DW_PAD_TOP]; g->pad_bottom = a[TK_DW_PAD_BOTTOM];
  g->pad_left = a[TK_DW_PAD_LEFT]; g->pad_right = a[TK_DW_PAD_RIGHT];
  g->out_h = 0; g->out_w = 0;
  if (g->num <= 0 || g->channels <= 0 || g->multiplier <= 0 || g->height <= 0 || g->width <= 0 ||
      g->kernel_h <= 0 || g->kernel_w <= 0 || g->stride_h <= 0 || g->stride_w <= 0 ||
      g->dilation_h <= 0 || g->dilation_w <= 0 || g->pad_top < 0 || g->pad_bottom < 0 ||
      g->pad_left < 0 || g->pad_right < 0) {
    return -1;
  }
  const int ext_h = g->dilation_h * (g->kernel_h - 1) + 1;
  const int ext_w = g->dilation_w * (g->kernel_w - 1) + 1;
  const int span_h = g->height + g->pad_top + g->pad_bottom - ext_h;
  const int span_w = g->width + g->pad_left + g->pad_right - ext_w;
  if (span_h < 0 || span_w < 0) return -1;
  g->out_h = span_h / g->stride_h + 1;
  g->out_w = span_w / g->stride_w + 1;
  return 0;
}

// y = depthwise_conv(x, w) + b; b may be NULL.  Overwrites y.
template <typename T>
void depthwise_conv_forward_cpu(const DepthwiseGeometry& g, const T* x, const T* w, const T* b, T* y);

// dx = dL/dx given dy = dL/dy.  Overwrites dx.
template <typename T>
void depthwise_conv_backward_data_cpu(const DepthwiseGeometry& g, const T* dy, const T* w, T* dx);

// dw += dL/dw (accumulates, like Caffe's parameter diffs).
template <typename T>
void depthwise_conv_backward_weight_cpu(const DepthwiseGeometry& g, const T* dy, const T* x, T* dw);

// db += dL/db (accumulates).
template <typename T>
void depthwise_conv_backward_bias_cpu(const DepthwiseGeometry& g, const T* dy, T* db);

}  // namespace tk

// C ABI (ctypes-friendly).  geom: 15 ints in DepthwiseGeomIndex order.
// Every function returns 0 on success and -1 for an invalid geometry.
extern "C" {
int tk_dwconv_output_size(const int* geom, int* out_hw);
int tk_dwconv_forward_f32(const int* geom, const float* x, const float* w, const float* b, float* y);
int tk_dwconv_backward_data_f32(const int* geom, const float* dy, const float* w, float* dx);
int tk_dwconv_backward_weight_f32(const int* geom, const float* dy, const float* x, float* dw);
int tk_dwconv_backward_bias_f32(const int* geom, const float* dy, float* db);
int tk_dwconv_forward_f64(const int* geom, const double* x, const double* w, const double* b, double* y);
int tk_dwconv_backward_data_f64(const int* geom, const double* dy, const double* w, double* dx);
int tk_dwconv_backward_weight_f64(const int* geom, const double* dy, const double* x, double* dw);
int tk_dwconv_backward_bias_f64(const int* geom, const double* dy, double* db);
}

#endif  // TK_DEPTHWISE_CONV_CPU_HPP_
