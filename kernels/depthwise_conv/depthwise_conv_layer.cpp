// transpiler.kernels: DepthwiseConvolution Caffe layer -- setup, CPU side and registration.
#include <vector>

#include "caffe/filler.hpp"
#include "caffe/layers/depthwise_conv_layer.hpp"
#include "depthwise_conv_cpu.hpp"

namespace caffe {

template <typename Dtype>
void DepthwiseConvolutionLayer<Dtype>::LayerSetUp(const vector<Blob<Dtype>*>& bottom,
                                                  const vector<Blob<Dtype>*>& top) {
  const DepthwiseConvolutionParameter& p = this->layer_param_.depthwise_conv_param();
  CHECK_EQ(bottom[0]->num_axes(), 4) << "DepthwiseConvolution takes N x C x H x W input";
  CHECK(top[0] != bottom[0]) << "DepthwiseConvolution cannot run in place";
  channels_ = bottom[0]->channels();
  multiplier_ = static_cast<int>(p.channel_multiplier());
  if (p.has_num_output()) {
    const int num_output = static_cast<int>(p.num_output());
    CHECK_EQ(num_output % channels_, 0) << "num_output must be a multiple of the input channels";
    const int m = num_output / channels_;
    if (p.has_channel_multiplier()) CHECK_EQ(m, multiplier_) << "num_output != channels * channel_multiplier";
    multiplier_ = m;
  }
  CHECK_GE(multiplier_, 1) << "channel_multiplier must be >= 1";
  kernel_h_ = p.kernel_h();
  kernel_w_ = p.kernel_w();
  CHECK_GT(kernel_h_, 0) << "kernel_h must be set";
  CHECK_GT(kernel_w_, 0) << "kernel_w must be set";
  stride_h_ = p.stride_h();
  stride_w_ = p.stride_w();
  dilation_h_ = p.dilation_h();
  dilation_w_ = p.dilation_w();
  CHECK(stride_h_ > 0 && stride_w_ > 0 && dilation_h_ > 0 && dilation_w_ > 0);
  pad_top_ = p.pad_top();
  pad_bottom_ = p.pad_bottom();
  pad_left_ = p.pad_left();
  pad_right_ = p.pad_right();
  bias_term_ = p.bias_term();

  vector<int> weight_shape(4);
  weight_shape[0] = channels_ * multiplier_;
  weight_shape[1] = 1;
  weight_shape[2] = kernel_h_;
  weight_shape[3] = kernel_w_;
  vector<int> bias_shape(1, channels_ * multiplier_);
  if (this->blobs_.size() > 0) {
    CHECK_EQ(this->blobs_.size(), bias_term_ ? 2u : 1u) << "Incorrect number of weight blobs";
    CHECK(this->blobs_[0]->shape() == weight_shape)
        << "Weight shape mismatch: got " << this->blobs_[0]->shape_string() << ", expected (C*M) x 1 x KH x KW";
    if (bias_term_) CHECK(this->blobs_[1]->shape() == bias_shape) << "Bias shape mismatch";
    LOG(INFO) << "Skipping parameter initialization";
  } else {
    this->blobs_.resize(bias_term_ ? 2 : 1);
    this->blobs_[0].reset(new Blob<Dtype>(weight_shape));
    shared_ptr<Filler<Dtype> > weight_filler(GetFiller<Dtype>(p.weight_filler()));
    weight_filler->Fill(this->blobs_[0].get());
    if (bias_term_) {
      this->blobs_[1].reset(new Blob<Dtype>(bias_shape));
      shared_ptr<Filler<Dtype> > bias_filler(GetFiller<Dtype>(p.bias_filler()));
      bias_filler->Fill(this->blobs_[1].get());
    }
  }
  this->param_propagate_down_.resize(this->blobs_.size(), true);
}

template <typename Dtype>
void DepthwiseConvolutionLayer<Dtype>::Geometry(const Blob<Dtype>& bottom, int geom[15]) const {
  const int v[15] = {bottom.num(), channels_, multiplier_, bottom.height(), bottom.width(),
                     kernel_h_, kernel_w_, stride_h_, stride_w_, dilation_h_, dilation_w_,
                     pad_top_, pad_bottom_, pad_left_, pad_right_};
  for (int i = 0; i < 15; ++i) geom[i] = v[i];
}

template <typename Dtype>
void DepthwiseConvolutionLayer<Dtype>::Reshape(const vector<Blob<Dtype>*>& bottom,
                                               const vector<Blob<Dtype>*>& top) {
  CHECK_EQ(bottom[0]->num_axes(), 4) << "DepthwiseConvolution takes N x C x H x W input";
  CHECK_EQ(bottom[0]->channels(), channels_) << "Input channels changed after setup";
  int geom[15];
  Geometry(*bottom[0], geom);
  tk::DepthwiseGeometry g;
  CHECK_EQ(tk::depthwise_geometry_init(geom, &g), 0)
      << "Kernel (with dilation) larger than the padded input " << bottom[0]->shape_string();
  top[0]->Reshape(g.num, channels_ * multiplier_, g.out_h, g.out_w);
}

template <typename Dtype>
void DepthwiseConvolutionLayer<Dtype>::Forward_cpu(const vector<Blob<Dtype>*>& bottom,
                                                   const vector<Blob<Dtype>*>& top) {
  int geom[15];
  Geometry(*bottom[0], geom);
  tk::DepthwiseGeometry g;
  tk::depthwise_geometry_init(geom, &g);
  tk::depthwise_conv_forward_cpu<Dtype>(g, bottom[0]->cpu_data(), this->blobs_[0]->cpu_data(),
                                        bias_term_ ? this->blobs_[1]->cpu_data() : NULL,
                                        top[0]->mutable_cpu_data());
}

template <typename Dtype>
void DepthwiseConvolutionLayer<Dtype>::Backward_cpu(const vector<Blob<Dtype>*>& top,
                                                    const vector<bool>& propagate_down,
                                                    const vector<Blob<Dtype>*>& bottom) {
  int geom[15];
  Geometry(*bottom[0], geom);
  tk::DepthwiseGeometry g;
  tk::depthwise_geometry_init(geom, &g);
  const Dtype* top_diff = top[0]->cpu_diff();
  // Parameter diffs accumulate (Net clears them between iterations); the bottom diff is overwritten.
  if (bias_term_ && this->param_propagate_down_[1]) {
    tk::depthwise_conv_backward_bias_cpu<Dtype>(g, top_diff, this->blobs_[1]->mutable_cpu_diff());
  }
  if (this->param_propagate_down_[0]) {
    tk::depthwise_conv_backward_weight_cpu<Dtype>(g, top_diff, bottom[0]->cpu_data(),
                                                  this->blobs_[0]->mutable_cpu_diff());
  }
  if (propagate_down[0]) {
    tk::depthwise_conv_backward_data_cpu<Dtype>(g, top_diff, this->blobs_[0]->cpu_data(),
                                                bottom[0]->mutable_cpu_diff());
  }
}

#ifdef CPU_ONLY
STUB_GPU(DepthwiseConvolutionLayer);
#endif

INSTANTIATE_CLASS(DepthwiseConvolutionLayer);
REGISTER_LAYER_CLASS(DepthwiseConvolution);

}  // namespace caffe
