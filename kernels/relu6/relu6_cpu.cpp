// transpiler.kernels: ReLU6 -- CPU math and its C ABI.  y = min(max(x, 0), 6).
#include "relu6_cpu.hpp"

namespace tk {

template <typename T>
void relu6_forward_cpu(long long count, const T* x, T* y) {
  for (long long i = 0; i < count; ++i) {
    const T v = x[i] < T(0) ? T(0) : x[i];  // NaN falls through unchanged
    y[i] = v > T(6) ? T(6) : v;
  }
}

template <typename T>
void relu6_backward_cpu(long long count, const T* x, const T* dy, T* dx) {
  for (long long i = 0; i < count; ++i) {
    dx[i] = (x[i] > T(0) && x[i] < T(6)) ? dy[i] : T(0);
  }
}

template void relu6_forward_cpu<float>(long long, const float*, float*);
template void relu6_forward_cpu<double>(long long, const double*, double*);
template void relu6_backward_cpu<float>(long long, const float*, const float*, float*);
template void relu6_backward_cpu<double>(long long, const double*, const double*, double*);

}  // namespace tk

extern "C" {

void tk_relu6_forward_f32(const float* x, float* y, long long count) {
  tk::relu6_forward_cpu<float>(count, x, y);
}
void tk_relu6_backward_f32(const float* x, const float* dy, float* dx, long long count) {
  tk::relu6_backward_cpu<float>(count, x, dy, dx);
}
void tk_relu6_forward_f64(const double* x, double* y, long long count) {
  tk::relu6_forward_cpu<double>(count, x, y);
}
void tk_relu6_backward_f64(const double* x, const double* dy, double* dx, long long count) {
  tk::relu6_backward_cpu<double>(count, x, dy, dx);
}

}  // extern "C"
