// transpiler.kernels: depthwise convolution -- the CUDA kernels (device code only).
//
// Included by depthwise_conv_cuda.cu, whose launchers pick the instantiations; kept free of host code
// and host headers so that NVRTC compiles exactly these kernels for architectures the installed nvcc
// no longer targets (tests/kernels/test_kernels_nvrtc.py).  What each thread computes is in
// depthwise_conv_cuda_point.hpp; the launch scheme is described in depthwise_conv_cuda.cu.
#ifndef TK_DEPTHWISE_CONV_CUDA_KERNELS_CUH_
#define TK_DEPTHWISE_CONV_CUDA_KERNELS_CUH_

#include "depthwise_conv_cuda_point.hpp"

namespace tk {
namespace dw_kernels {

const int kThreads = 256;  // block size of every kernel here (block_sum needs a power of two)

template <typename T, typename I, int KH, int KW>
__global__ void __launch_bounds__(256)
    dw_forward_kernel(const DepthwiseGeometry g, const T* __restrict__ x, const T* __restrict__ w,
                      const T* __restrict__ b, T* __restrict__ y, const I total) {
  for (I idx = static_cast<I>(blockIdx.x) * blockDim.x + threadIdx.x; idx < total;
       idx += static_cast<I>(gridDim.x) * blockDim.x) {
    y[idx] = dw_forward_point<T, I, KH, KW>(g, x, w, b, idx);
  }
}

template <typename T, typename I, int S, int V>
__global__ void __launch_bounds__(256)
    dw_forward_strip_kernel(const DepthwiseGeometry g, const T* __restrict__ x, const T* __restrict__ w,
                            const T* __restrict__ b, T* __restrict__ y, const I total_strips) {
  for (I sidx = static_cast<I>(blockIdx.x) * blockDim.x + threadIdx.x; sidx < total_strips;
       sidx += static_cast<I>(gridDim.x) * blockDim.x) {
    dw_forward_strip<T, I, 3, 3, S, V>(g, x, w, b, y, sidx);
  }
}

template <typename T, typename I, int KH, int KW>
__global__ void __launch_bounds__(256)
    dw_backward_data_kernel(const DepthwiseGeometry g, const T* __restrict__ dy, const T* __restrict__ w,
                            T* __restrict__ dx, const I total) {
  for (I idx = static_cast<I>(blockIdx.x) * blockDim.x + threadIdx.x; idx < total;
       idx += static_cast<I>(gridDim.x) * blockDim.x) {
    dx[idx] = dw_backward_data_point<T, I, KH, KW>(g, dy, w, idx);
  }
}

template <typename T>
__device__ T block_sum(T v, T* buf) {
  buf[threadIdx.x] = v;
  __syncthreads();
  for (int s = blockDim.x / 2; s > 0; s >>= 1) {
    if (threadIdx.x < s) buf[threadIdx.x] += buf[threadIdx.x + s];
    __syncthreads();
  }
  return buf[0];
}

// One block per (output channel o, kernel tap k): dw[o, k] += sum_{n,i,j} dy[n,o,i,j] * x[n,c,iy,ix].
template <typename T, typename I>
__global__ void __launch_bounds__(256)
    dw_backward_weight_kernel(const DepthwiseGeometry g, const T* __restrict__ dy, const T* __restrict__ x,
                              T* __restrict__ dw) {
  __shared__ T buf[kThreads];
  const int ktaps = g.kernel_h * g.kernel_w;
  const int k = blockIdx.x % ktaps;
  const int o = blockIdx.x / ktaps;
  const I total = static_cast<I>(g.out_h) * g.out_w * g.num;
  T acc = T(0);
  for (I t = threadIdx.x; t < total; t += blockDim.x) acc += dw_backward_weight_term<T, I>(g, dy, x, o, k, t);
  const T s = block_sum(acc, buf);
  if (threadIdx.x == 0) dw[static_cast<I>(o) * ktaps + k] += s;
}

// One block per output channel o: db[o] += sum_{n,i,j} dy[n,o,i,j].
template <typename T, typename I>
__global__ void __launch_bounds__(256)
    dw_backward_bias_kernel(const DepthwiseGeometry g, const T* __restrict__ dy, T* __restrict__ db) {
  __shared__ T buf[kThreads];
  const int o = blockIdx.x;
  const I total = static_cast<I>(g.out_h) * g.out_w * g.num;
  T acc = T(0);
  for (I t = threadIdx.x; t < total; t += blockDim.x) acc += dw_backward_bias_term<T, I>(g, dy, o, t);
  const T s = block_sum(acc, buf);
  if (threadIdx.x == 0) db[o] += s;
}

}  // namespace dw_kernels
}  // namespace tk

#endif  // TK_DEPTHWISE_CONV_CUDA_KERNELS_CUH_
