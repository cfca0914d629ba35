// transpiler.kernels: DepthwiseConvolution Caffe layer -- GPU side.
#include <vector>

#include "caffe/layers/depthwise_conv_layer.hpp"
#include "depthwise_conv_cuda.hpp"

namespace caffe {

template <typename Dtype>
void DepthwiseConvolutionLayer<Dtype>::Forward_gpu(const vector<Blob<Dtype>*>& bottom,
                                                   const vector<Blob<Dtype>*>& top) {
  int geom[15];
  Geometry(*bottom[0], geom);
  tk::DepthwiseGeometry g;
  tk::depthwise_geometry_init(geom, &g);
  CUDA_CHECK(tk::depthwise_conv_forward_gpu<Dtype>(g, bottom[0]->gpu_data(), this->blobs_[0]->gpu_data(),
                                                   bias_term_ ? this->blobs_[1]->gpu_data() : NULL,
                                                   top[0]->mutable_gpu_data(), 0));
}

template <typename Dtype>
void DepthwiseConvolutionLayer<Dtype>::Backward_gpu(const vector<Blob<Dtype>*>& top,
                                                    const vector<bool>& propagate_down,
                                                    const vector<Blob<Dtype>*>& bottom) {
  int geom[15];
  Geometry(*bottom[0], geom);
  tk::DepthwiseGeometry g;
  tk::depthwise_geometry_init(geom, &g);
  const Dtype* top_diff = top[0]->gpu_diff();
  if (bias_term_ && this->param_propagate_down_[1]) {
    CUDA_CHECK(tk::depthwise_conv_backward_bias_gpu<Dtype>(g, top_diff, this->blobs_[1]->mutable_gpu_diff(), 0));
  }
  if (this->param_propagate_down_[0]) {
    CUDA_CHECK(tk::depthwise_conv_backward_weight_gpu<Dtype>(g, top_diff, bottom[0]->gpu_data(),
                                                             this->blobs_[0]->mutable_gpu_diff(), 0));
  }
  if (propagate_down[0]) {
    CUDA_CHECK(tk::depthwise_conv_backward_data_gpu<Dtype>(g, top_diff, this->blobs_[0]->gpu_data(),
                                                           bottom[0]->mutable_gpu_diff(), 0));
  }
}

INSTANTIATE_LAYER_GPU_FUNCS(DepthwiseConvolutionLayer);

}  // namespace caffe
