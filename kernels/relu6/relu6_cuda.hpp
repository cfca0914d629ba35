// transpiler.kernels: ReLU6 -- CUDA launchers (no Caffe dependency).
//   forward : y = min(max(x, 0), 6);  backward: dx = dy where 0 < x < 6, else 0.
// Device pointers; asynchronous on `stream`; in place (x == y, dy == dx) allowed.
#ifndef TK_RELU6_CUDA_HPP_
#define TK_RELU6_CUDA_HPP_

#include <cuda_runtime.h>

namespace tk {

template <typename T>
cudaError_t relu6_forward_gpu(long long count, const T* x, T* y, cudaStream_t stream);

template <typename T>
cudaError_t relu6_backward_gpu(long long count, const T* x, const T* dy, T* dx, cudaStream_t stream);

}  // namespace tk

// C ABI: 0 on success, otherwise a cudaError_t value.
extern "C" {
int tk_relu6_forward_cuda_f32(const float* x, float* y, long long count, void* stream);
int tk_relu6_backward_cuda_f32(const float* x, const float* dy, float* dx, long long count, void* stream);
// Host pointers: copy in, run, synchronise, copy out (for tests).
int tk_relu6_forward_cuda_host_f32(const float* x, float* y, long long count);
int tk_relu6_backward_cuda_host_f32(const float* x, const float* dy, float* dx, long long count);
}

#endif  // TK_RELU6_CUDA_HPP_
