// transpiler.kernels: ReLU6 Caffe layer -- CPU side and registration.
#include <vector>

#include "caffe/layers/relu6_layer.hpp"
#include "relu6_cpu.hpp"

namespace caffe {

template <typename Dtype>
void ReLU6Layer<Dtype>::Forward_cpu(const vector<Blob<Dtype>*>& bottom, const vector<Blob<Dtype>*>& top) {
  tk::relu6_forward_cpu<Dtype>(bottom[0]->count(), bottom[0]->cpu_data(), top[0]->mutable_cpu_data());
}

template <typename Dtype>
void ReLU6Layer<Dtype>::Backward_cpu(const vector<Blob<Dtype>*>& top, const vector<bool>& propagate_down,
                                     const vector<Blob<Dtype>*>& bottom) {
  if (!propagate_down[0]) return;
  // In place, bottom data is the output y; 0 < y < 6 selects the same elements as 0 < x < 6.
  tk::relu6_backward_cpu<Dtype>(bottom[0]->count(), bottom[0]->cpu_data(), top[0]->cpu_diff(),
                                bottom[0]->mutable_cpu_diff());
}

#ifdef CPU_ONLY
STUB_GPU(ReLU6Layer);
#endif

INSTANTIATE_CLASS(ReLU6Layer);
REGISTER_LAYER_CLASS(ReLU6);

}  // namespace caffe
