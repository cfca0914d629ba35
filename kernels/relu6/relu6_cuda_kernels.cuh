// transpiler.kernels: ReLU6 -- the CUDA kernels (device code only).  y = min(max(x, 0), 6).
//
// Included by relu6_cuda.cu, whose launchers pick the instantiations; kept free of host code and host
// headers so that NVRTC compiles exactly these kernels for architectures the installed nvcc no longer
// targets (tests/kernels/test_kernels_nvrtc.py).
#ifndef TK_RELU6_CUDA_KERNELS_CUH_
#define TK_RELU6_CUDA_KERNELS_CUH_

namespace tk {
namespace relu6_kernels {

template <typename T>
__global__ void relu6_forward_kernel(long long count, const T* x, T* y) {
  for (long long i = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x; i < count;
       i += static_cast<long long>(gridDim.x) * blockDim.x) {
    const T v = x[i] < T(0) ? T(0) : x[i];  // NaN falls through unchanged
    y[i] = v > T(6) ? T(6) : v;
  }
}

template <typename T>
__global__ void relu6_backward_kernel(long long count, const T* x, const T* dy, T* dx) {
  for (long long i = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x; i < count;
       i += static_cast<long long>(gridDim.x) * blockDim.x) {
    const T v = x[i];
    dx[i] = (v > T(0) && v < T(6)) ? dy[i] : T(0);
  }
}

}  // namespace relu6_kernels
}  // namespace tk

#endif  // TK_RELU6_CUDA_KERNELS_CUH_
