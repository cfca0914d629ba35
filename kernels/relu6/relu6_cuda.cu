// transpiler.kernels: ReLU6 -- CUDA kernels and their C ABI.  y = min(max(x, 0), 6).
#include "relu6_cuda.hpp"
#include "relu6_cuda_kernels.cuh"

namespace tk {
namespace {

const int kThreads = 256;

inline int grid_for(long long count) {
  long long blocks = (count + kThreads - 1) / kThreads;
  if (blocks < 1) blocks = 1;
  if (blocks > 65535LL * 16) blocks = 65535LL * 16;  // grid-stride loop covers the rest
  return static_cast<int>(blocks);
}

using relu6_kernels::relu6_backward_kernel;
using relu6_kernels::relu6_forward_kernel;

}  // namespace

template <typename T>
cudaError_t relu6_forward_gpu(long long count, const T* x, T* y, cudaStream_t stream) {
  if (count <= 0) return cudaSuccess;
  relu6_forward_kernel<T><<<grid_for(count), kThreads, 0, stream>>>(count, x, y);
  return cudaGetLastError();
}

template <typename T>
cudaError_t relu6_backward_gpu(long long count, const T* x, const T* dy, T* dx, cudaStream_t stream) {
  if (count <= 0) return cudaSuccess;
  relu6_backward_kernel<T><<<grid_for(count), kThreads, 0, stream>>>(count, x, dy, dx);
  return cudaGetLastError();
}

template cudaError_t relu6_forward_gpu<float>(long long, const float*, float*, cudaStream_t);
template cudaError_t relu6_forward_gpu<double>(long long, const double*, double*, cudaStream_t);
template cudaError_t relu6_backward_gpu<float>(long long, const float*, const float*, float*, cudaStream_t);
template cudaError_t relu6_backward_gpu<double>(long long, const double*, const double*, double*,
                                                cudaStream_t);

}  // namespace tk

extern "C" {

int tk_relu6_forward_cuda_f32(const float* x, float* y, long long count, void* stream) {
  return tk::relu6_forward_gpu<float>(count, x, y, static_cast<cudaStream_t>(stream));
}

int tk_relu6_backward_cuda_f32(const float* x, const float* dy, float* dx, long long count, void* stream) {
  return tk::relu6_backward_gpu<float>(count, x, dy, dx, static_cast<cudaStream_t>(stream));
}

int tk_relu6_forward_cuda_host_f32(const float* x, float* y, long long count) {
  const size_t bytes = static_cast<size_t>(count) * sizeof(float);
  float* d = NULL;
  cudaError_t e = cudaMalloc(reinterpret_cast<void**>(&d), bytes + 1);
  if (e != cudaSuccess) return e;
  e = cudaMemcpy(d, x, bytes, cudaMemcpyHostToDevice);
  if (e == cudaSuccess) e = tk::relu6_forward_gpu<float>(count, d, d, 0);  // in place
  if (e == cudaSuccess) e = cudaDeviceSynchronize();
  if (e == cudaSuccess) e = cudaMemcpy(y, d, bytes, cudaMemcpyDeviceToHost);
  cudaFree(d);
  return e;
}

int tk_relu6_backward_cuda_host_f32(const float* x, const float* dy, float* dx, long long count) {
  const size_t bytes = static_cast<size_t>(count) * sizeof(float);
  float* dxp = NULL;
  float* dyp = NULL;
  cudaError_t e = cudaMalloc(reinterpret_cast<void**>(&dxp), bytes + 1);
  if (e == cudaSuccess) e = cudaMalloc(reinterpret_cast<void**>(&dyp), bytes + 1);
  if (e == cudaSuccess) e = cudaMemcpy(dxp, x, bytes, cudaMemcpyHostToDevice);
  if (e == cudaSuccess) e = cudaMemcpy(dyp, dy, bytes, cudaMemcpyHostToDevice);
  if (e == cudaSuccess) e = tk::relu6_backward_gpu<float>(count, dxp, dyp, dyp, 0);  // in place
  if (e == cudaSuccess) e = cudaDeviceSynchronize();
  if (e == cudaSuccess) e = cudaMemcpy(dx, dyp, bytes, cudaMemcpyDeviceToHost);
  if (dxp) cudaFree(dxp);
  if (dyp) cudaFree(dyp);
  return e;
}

}  // extern "C"
