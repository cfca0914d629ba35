// transpiler.kernels: depthwise convolution -- CUDA kernels and their C ABI.
//
// Forward: direct kernels, no im2col.  The general one runs one thread per output element
// (n, o, i, j) in NCHW order, so writes are coalesced and neighbouring threads read neighbouring
// input pixels (L1/L2 absorb the KxK overlap); 3x3 and 5x5 are compile-time specialisations
// (fully unrolled) and windows wholly inside the image skip the bounds tests.  For MobileNet's
// 3x3 stride-1/2 layers a strip kernel gives each thread 2 or 4 neighbouring outputs of a row,
// loading each input row segment once into registers (dw_default_vec picks the width; the
// tk_dwconv_forward_cuda_vec_f32 entry point forces one, for benchmarking).  32-bit index
// arithmetic is used whenever every tensor has fewer than 2^31 elements.
// Backward-data: one thread per input element gathers from the outputs whose window covers it
// (no atomics).  Weight/bias gradients: one block per (output channel, tap) / output channel,
// reducing over batch and output pixels in shared memory, then accumulating into dw / db.
#include <climits>

#include "depthwise_conv_cuda.hpp"
#include "depthwise_conv_cuda_kernels.cuh"

namespace tk {
namespace {

using dw_kernels::kThreads;
using dw_kernels::dw_backward_bias_kernel;
using dw_kernels::dw_backward_data_kernel;
using dw_kernels::dw_backward_weight_kernel;
using dw_kernels::dw_forward_kernel;
using dw_kernels::dw_forward_strip_kernel;

inline int grid_for(long long total) {
  long long blocks = (total + kThreads - 1) / kThreads;
  if (blocks < 1) blocks = 1;
  if (blocks > (1LL << 30)) blocks = 1LL << 30;
  return static_cast<int>(blocks);
}

inline long long input_count(const DepthwiseGeometry& g) {
  return static_cast<long long>(g.num) * g.channels * g.height * g.width;
}
inline long long output_count(const DepthwiseGeometry& g) {
  return static_cast<long long>(g.num) * g.channels * g.multiplier * g.out_h * g.out_w;
}
inline bool fits_int32(const DepthwiseGeometry& g) {
  return input_count(g) < INT_MAX && output_count(g) < INT_MAX;
}

template <typename T, typename I, int S, int V>
void launch_strips(const DepthwiseGeometry& g, const T* x, const T* w, const T* b, T* y, cudaStream_t s) {
  const I total = static_cast<I>(g.num) * g.channels * g.multiplier * g.out_h * ((g.out_w + V - 1) / V);
  dw_forward_strip_kernel<T, I, S, V><<<grid_for(total), kThreads, 0, s>>>(g, x, w, b, y, total);
}

// vec: outputs per thread (1, 2 or 4); 2 and 4 need dw_strip_applies(g).
template <typename T, typename I>
void launch_forward(const DepthwiseGeometry& g, const T* x, const T* w, const T* b, T* y, int vec,
                    cudaStream_t s) {
  if (vec > 1) {
    const bool s1 = g.stride_w == 1;
    if (vec == 4) {
      if (s1) launch_strips<T, I, 1, 4>(g, x, w, b, y, s);
      else launch_strips<T, I, 2, 4>(g, x, w, b, y, s);
    } else {
      if (s1) launch_strips<T, I, 1, 2>(g, x, w, b, y, s);
      else launch_strips<T, I, 2, 2>(g, x, w, b, y, s);
    }
    return;
  }
  const I total = static_cast<I>(output_count(g));
  const int grid = grid_for(total);
  if (g.kernel_h == 3 && g.kernel_w == 3) {
    dw_forward_kernel<T, I, 3, 3><<<grid, kThreads, 0, s>>>(g, x, w, b, y, total);
  } else if (g.kernel_h == 5 && g.kernel_w == 5) {
    dw_forward_kernel<T, I, 5, 5><<<grid, kThreads, 0, s>>>(g, x, w, b, y, total);
  } else {
    dw_forward_kernel<T, I, -1, -1><<<grid, kThreads, 0, s>>>(g, x, w, b, y, total);
  }
}

template <typename T>
cudaError_t forward_with_vec(const DepthwiseGeometry& g, const T* x, const T* w, const T* b, T* y, int vec,
                             cudaStream_t stream) {
  if (fits_int32(g)) {
    launch_forward<T, int>(g, x, w, b, y, vec, stream);
  } else {
    launch_forward<T, long long>(g, x, w, b, y, vec, stream);
  }
  return cudaGetLastError();
}

template <typename T, typename I>
void launch_backward_data(const DepthwiseGeometry& g, const T* dy, const T* w, T* dx, cudaStream_t s) {
  const I total = static_cast<I>(input_count(g));
  const int grid = grid_for(total);
  if (g.kernel_h == 3 && g.kernel_w == 3) {
    dw_backward_data_kernel<T, I, 3, 3><<<grid, kThreads, 0, s>>>(g, dy, w, dx, total);
  } else {
    dw_backward_data_kernel<T, I, -1, -1><<<grid, kThreads, 0, s>>>(g, dy, w, dx, total);
  }
}

}  // namespace

template <typename T>
cudaError_t depthwise_conv_forward_gpu(const DepthwiseGeometry& g, const T* x, const T* w, const T* b,
                                       T* y, cudaStream_t stream) {
  return forward_with_vec<T>(g, x, w, b, y, dw_default_vec(g), stream);
}

template <typename T>
cudaError_t depthwise_conv_backward_data_gpu(const DepthwiseGeometry& g, const T* dy, const T* w, T* dx,
                                             cudaStream_t stream) {
  if (fits_int32(g)) {
    launch_backward_data<T, int>(g, dy, w, dx, stream);
  } else {
    launch_backward_data<T, long long>(g, dy, w, dx, stream);
  }
  return cudaGetLastError();
}

template <typename T>
cudaError_t depthwise_conv_backward_weight_gpu(const DepthwiseGeometry& g, const T* dy, const T* x, T* dw,
                                               cudaStream_t stream) {
  const int blocks = g.channels * g.multiplier * g.kernel_h * g.kernel_w;
  if (fits_int32(g)) {
    dw_backward_weight_kernel<T, int><<<blocks, kThreads, 0, stream>>>(g, dy, x, dw);
  } else {
    dw_backward_weight_kernel<T, long long><<<blocks, kThreads, 0, stream>>>(g, dy, x, dw);
  }
  return cudaGetLastError();
}

template <typename T>
cudaError_t depthwise_conv_backward_bias_gpu(const DepthwiseGeometry& g, const T* dy, T* db,
                                             cudaStream_t stream) {
  const int blocks = g.channels * g.multiplier;
  if (fits_int32(g)) {
    dw_backward_bias_kernel<T, int><<<blocks, kThreads, 0, stream>>>(g, dy, db);
  } else {
    dw_backward_bias_kernel<T, long long><<<blocks, kThreads, 0, stream>>>(g, dy, db);
  }
  return cudaGetLastError();
}

template cudaError_t depthwise_conv_forward_gpu<float>(const DepthwiseGeometry&, const float*, const float*,
                                                       const float*, float*, cudaStream_t);
template cudaError_t depthwise_conv_forward_gpu<double>(const DepthwiseGeometry&, const double*,
                                                        const double*, const double*, double*, cudaStream_t);
template cudaError_t depthwise_conv_backward_data_gpu<float>(const DepthwiseGeometry&, const float*,
                                                             const float*, float*, cudaStream_t);
template cudaError_t depthwise_conv_backward_data_gpu<double>(const DepthwiseGeometry&, const double*,
                                                              const double*, double*, cudaStream_t);
template cudaError_t depthwise_conv_backward_weight_gpu<float>(const DepthwiseGeometry&, const float*,
                                                               const float*, float*, cudaStream_t);
template cudaError_t depthwise_conv_backward_weight_gpu<double>(const DepthwiseGeometry&, const double*,
                                                                const double*, double*, cudaStream_t);
template cudaError_t depthwise_conv_backward_bias_gpu<float>(const DepthwiseGeometry&, const float*, float*,
                                                             cudaStream_t);
template cudaError_t depthwise_conv_backward_bias_gpu<double>(const DepthwiseGeometry&, const double*,
                                                              double*, cudaStream_t);

}  // namespace tk

// ---------------------------------------------------------------------------------------------
// C ABI
// ---------------------------------------------------------------------------------------------
namespace {

// Device buffer that frees itself; copy-in optional.
struct DeviceBuffer {
  float* ptr;
  DeviceBuffer() : ptr(NULL) {}
  ~DeviceBuffer() {
    if (ptr) cudaFree(ptr);
  }
  cudaError_t alloc(size_t count, const float* host) {
    cudaError_t e = cudaMalloc(reinterpret_cast<void**>(&ptr), count * sizeof(float) + 1);
    if (e != cudaSuccess || !host) return e;
    return cudaMemcpy(ptr, host, count * sizeof(float), cudaMemcpyHostToDevice);
  }
  cudaError_t fetch(float* host, size_t count) const {
    return cudaMemcpy(host, ptr, count * sizeof(float), cudaMemcpyDeviceToHost);
  }
};

#define TK_TRY(expr)                          \
  do {                                        \
    const cudaError_t tk_err_ = (expr);       \
    if (tk_err_ != cudaSuccess) return tk_err_; \
  } while (0)

size_t in_count(const tk::DepthwiseGeometry& g) {
  return static_cast<size_t>(g.num) * g.channels * g.height * g.width;
}
size_t out_count(const tk::DepthwiseGeometry& g) {
  return static_cast<size_t>(g.num) * g.channels * g.multiplier * g.out_h * g.out_w;
}
size_t w_count(const tk::DepthwiseGeometry& g) {
  return static_cast<size_t>(g.channels) * g.multiplier * g.kernel_h * g.kernel_w;
}

}  // namespace

extern "C" {

int tk_cuda_device_count(void) {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();
    return 0;
  }
  return n;
}

int tk_dwconv_forward_cuda_f32(const int* geom, const float* x, const float* w, const float* b, float* y,
                               void* stream) {
  tk::DepthwiseGeometry g;
  if (tk::depthwise_geometry_init(geom, &g) != 0) return -1;
  return tk::depthwise_conv_forward_gpu<float>(g, x, w, b, y, static_cast<cudaStream_t>(stream));
}

int tk_dwconv_forward_cuda_vec_f32(const int* geom, const float* x, const float* w, const float* b, float* y,
                                   int vec, void* stream) {
  tk::DepthwiseGeometry g;
  if (tk::depthwise_geometry_init(geom, &g) != 0) return -1;
  if (vec == 0) vec = tk::dw_default_vec(g);
  if (vec != 1 && vec != 2 && vec != 4) return -2;
  if (vec > 1 && !tk::dw_strip_applies(g)) return -2;
  return tk::forward_with_vec<float>(g, x, w, b, y, vec, static_cast<cudaStream_t>(stream));
}

int tk_dwconv_backward_cuda_f32(const int* geom, const float* dy, const float* x, const float* w, float* dx,
                                float* dw, float* db, void* stream) {
  tk::DepthwiseGeometry g;
  if (tk::depthwise_geometry_init(geom, &g) != 0) return -1;
  const cudaStream_t s = static_cast<cudaStream_t>(stream);
  if (dx) TK_TRY(tk::depthwise_conv_backward_data_gpu<float>(g, dy, w, dx, s));
  if (dw) TK_TRY(tk::depthwise_conv_backward_weight_gpu<float>(g, dy, x, dw, s));
  if (db) TK_TRY(tk::depthwise_conv_backward_bias_gpu<float>(g, dy, db, s));
  return 0;
}

int tk_dwconv_forward_cuda_host_f32(const int* geom, const float* x, const float* w, const float* b,
                                    float* y, int vec) {
  tk::DepthwiseGeometry g;
  if (tk::depthwise_geometry_init(geom, &g) != 0) return -1;
  DeviceBuffer dx_, dw_, db_, dy_;
  TK_TRY(dx_.alloc(in_count(g), x));
  TK_TRY(dw_.alloc(w_count(g), w));
  if (b) TK_TRY(db_.alloc(static_cast<size_t>(g.channels) * g.multiplier, b));
  TK_TRY(dy_.alloc(out_count(g), NULL));
  const int rc = tk_dwconv_forward_cuda_vec_f32(geom, dx_.ptr, dw_.ptr, b ? db_.ptr : NULL, dy_.ptr, vec, NULL);
  if (rc != 0) return rc;
  TK_TRY(cudaDeviceSynchronize());
  TK_TRY(dy_.fetch(y, out_count(g)));
  return 0;
}

int tk_dwconv_backward_cuda_host_f32(const int* geom, const float* dy, const float* x, const float* w,
                                     float* dx, float* dw, float* db) {
  tk::DepthwiseGeometry g;
  if (tk::depthwise_geometry_init(geom, &g) != 0) return -1;
  const size_t oc = static_cast<size_t>(g.channels) * g.multiplier;
  DeviceBuffer d_dy, d_x, d_w, d_dx, d_dw, d_db;
  TK_TRY(d_dy.alloc(out_count(g), dy));
  TK_TRY(d_x.alloc(in_count(g), x));
  TK_TRY(d_w.alloc(w_count(g), w));
  if (dx) TK_TRY(d_dx.alloc(in_count(g), NULL));
  if (dw) TK_TRY(d_dw.alloc(w_count(g), dw));
  if (db) TK_TRY(d_db.alloc(oc, db));
  const int rc = tk_dwconv_backward_cuda_f32(geom, d_dy.ptr, d_x.ptr, d_w.ptr, dx ? d_dx.ptr : NULL,
                                             dw ? d_dw.ptr : NULL, db ? d_db.ptr : NULL, NULL);
  if (rc != 0) return rc;
  TK_TRY(cudaDeviceSynchronize());
  if (dx) TK_TRY(d_dx.fetch(dx, in_count(g)));
  if (dw) TK_TRY(d_dw.fetch(dw, w_count(g)));
  if (db) TK_TRY(d_db.fetch(db, oc));
  return 0;
}

}  // extern "C"
