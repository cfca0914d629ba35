// transpiler.kernels: depthwise convolution -- CUDA launchers (no Caffe dependency).
// Same math and layout as depthwise_conv_cpu.hpp; all pointers are device pointers.
// The launchers are asynchronous on `stream` and return the launch status.
#ifndef TK_DEPTHWISE_CONV_CUDA_HPP_
#define TK_DEPTHWISE_CONV_CUDA_HPP_

#include <cuda_runtime.h>

#include "depthwise_conv_cpu.hpp"

namespace tk {

// y = depthwise_conv(x, w) + b; b may be NULL.  Overwrites y.
template <typename T>
cudaError_t depthwise_conv_forward_gpu(const DepthwiseGeometry& g, const T* x, const T* w, const T* b,
                                       T* y, cudaStream_t stream);

// dx = dL/dx.  Overwrites dx.
template <typename T>
cudaError_t depthwise_conv_backward_data_gpu(const DepthwiseGeometry& g, const T* dy, const T* w, T* dx,
                                             cudaStream_t stream);

// dw += dL/dw (accumulates, like Caffe's parameter diffs).
template <typename T>
cudaError_t depthwise_conv_backward_weight_gpu(const DepthwiseGeometry& g, const T* dy, const T* x, T* dw,
                                               cudaStream_t stream);

// db += dL/db (accumulates).
template <typename T>
cudaError_t depthwise_conv_backward_bias_gpu(const DepthwiseGeometry& g, const T* dy, T* db,
                                             cudaStream_t stream);

}  // namespace tk

// C ABI.  Return values: 0 success, -1 invalid geometry, otherwise a cudaError_t value.
extern "C" {
int tk_cuda_device_count(void);
// Device pointers, asynchronous on `stream` (a cudaStream_t, NULL for the default stream).
int tk_dwconv_forward_cuda_f32(const int* geom, const float* x, const float* w, const float* b, float* y,
                               void* stream);
// Same, forcing the outputs per thread: vec = 1 (one output per thread), 2 or 4 (strip kernel; only
// for 3x3, dilation 1, equal strides 1 or 2, else returns -2), or 0 for the launcher's choice.
int tk_dwconv_forward_cuda_vec_f32(const int* geom, const float* x, const float* w, const float* b, float* y,
                                   int vec, void* stream);
// Any of dx, dw, db may be NULL to skip that gradient; dw and db accumulate.
int tk_dwconv_backward_cuda_f32(const int* geom, const float* dy, const float* x, const float* w, float* dx,
                                float* dw, float* db, void* stream);
// Host pointers: copies in, runs, synchronises, copies out (for tests); vec as above.
int tk_dwconv_forward_cuda_host_f32(const int* geom, const float* x, const float* w, const float* b,
                                    float* y, int vec);
int tk_dwconv_backward_cuda_host_f32(const int* geom, const float* dy, const float* x, const float* w,
                                     float* dx, float* dw, float* db);
}

#endif  // TK_DEPTHWISE_CONV_CUDA_HPP_
