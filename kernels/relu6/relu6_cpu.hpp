// transpiler.kernels: ReLU6 -- CPU math (no Caffe dependency).
//
//   forward : y = min(max(x, 0), 6)          (NaN propagates)
//   backward: dx = dy  where 0 < x < 6, else 0
// In place (x == y) is allowed.  Because 0 < x < 6  <=>  0 < y < 6, the backward may be given
// the layer's output instead of its input, which is what Caffe hands an in-place layer.
#ifndef TK_RELU6_CPU_HPP_
#define TK_RELU6_CPU_HPP_

namespace tk {

template <typename T>
void relu6_forward_cpu(long long count, const T* x, T* y);

template <typename T>
void relu6_backward_cpu(long long count, const T* x, const T* dy, T* dx);

}  // namespace tk

extern "C" {
void tk_relu6_forward_f32(const float* x, float* y, long long count);
void tk_relu6_backward_f32(const float* x, const float* dy, float* dx, long long count);
void tk_relu6_forward_f64(const double* x, double* y, long long count);
void tk_relu6_backward_f64(const double* x, const double* dy, double* dx, long long count);
}

#endif  // TK_RELU6_CPU_HPP_
