// transpiler.kernels: ReLU6 Caffe layer -- GPU side.
#include <vector>

#include "caffe/layers/relu6_layer.hpp"
#include "relu6_cuda.hpp"

namespace caffe {

template <typename Dtype>
void ReLU6Layer<Dtype>::Forward_gpu(const vector<Blob<Dtype>*>& bottom, const vector<Blob<Dtype>*>& top) {
  CUDA_CHECK(tk::relu6_forward_gpu<Dtype>(bottom[0]->count(), bottom[0]->gpu_data(),
                                          top[0]->mutable_gpu_data(), 0));
}

template <typename Dtype>
void ReLU6Layer<Dtype>::Backward_gpu(const vector<Blob<Dtype>*>& top, const vector<bool>& propagate_down,
                                     const vector<Blob<Dtype>*>& bottom) {
  if (!propagate_down[0]) return;
  CUDA_CHECK(tk::relu6_backward_gpu<Dtype>(bottom[0]->count(), bottom[0]->gpu_data(), top[0]->gpu_diff(),
                                           bottom[0]->mutable_gpu_diff(), 0));
}

INSTANTIATE_LAYER_GPU_FUNCS(ReLU6Layer);

}  // namespace caffe
