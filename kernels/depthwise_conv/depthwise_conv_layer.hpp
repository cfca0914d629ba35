// transpiler.kernels: DepthwiseConvolution Caffe layer (type "DepthwiseConvolution"),
// a thin wrapper of depthwise_conv_cpu / depthwise_conv_cuda.
#ifndef CAFFE_DEPTHWISE_CONV_LAYER_HPP_
#define CAFFE_DEPTHWISE_CONV_LAYER_HPP_

#include <vector>

#include "caffe/blob.hpp"
#include "caffe/layer.hpp"
#include "caffe/proto/caffe.pb.h"

namespace caffe {

/**
 * @brief Depthwise convolution with channel multiplier M and four independent pads.
 *
 * bottom: N x C x H x W;  weights blobs_[0]: (C*M) x 1 x KH x KW;  bias blobs_[1]: C*M (bias_term);
 * top: N x (C*M) x OH x OW with OH = (H + pad_top + pad_bottom - (DH*(KH-1)+1)) / SH + 1 (and OW alike):
 *   y[n,o,i,j] = b[o] + sum_{p,q} w[o,0,p,q] * x[n, o/M, i*SH - pad_top + p*DH, j*SW - pad_left + q*DW]
 * Parameters: DepthwiseConvolutionParameter depthwise_conv_param.
 */
template <typename Dtype>
class DepthwiseConvolutionLayer : public Layer<Dtype> {
 public:
  explicit DepthwiseConvolutionLayer(const LayerParameter& param) : Layer<Dtype>(param) {}
  virtual void LayerSetUp(const vector<Blob<Dtype>*>& bottom, const vector<Blob<Dtype>*>& top);
  virtual void Reshape(const vector<Blob<Dtype>*>& bottom, const vector<Blob<Dtype>*>& top);

  virtual inline const char* type() const { return "DepthwiseConvolution"; }
  virtual inline int ExactNumBottomBlobs() const { return 1; }
  virtual inline int ExactNumTopBlobs() const { return 1; }

 protected:
  virtual void Forward_cpu(const vector<Blob<Dtype>*>& bottom, const vector<Blob<Dtype>*>& top);
  virtual void Forward_gpu(const vector<Blob<Dtype>*>& bottom, const vector<Blob<Dtype>*>& top);
  virtual void Backward_cpu(const vector<Blob<Dtype>*>& top, const vector<bool>& propagate_down,
                            const vector<Blob<Dtype>*>& bottom);
  virtual void Backward_gpu(const vector<Blob<Dtype>*>& top, const vector<bool>& propagate_down,
                            const vector<Blob<Dtype>*>& bottom);

  // The 15 geometry integers of the math functions (see depthwise_conv_cpu.hpp) for `bottom`.
  void Geometry(const Blob<Dtype>& bottom, int geom[15]) const;

  int channels_, multiplier_;
  int kernel_h_, kernel_w_, stride_h_, stride_w_, dilation_h_, dilation_w_;
  int pad_top_, pad_bottom_, pad_left_, pad_right_;
  bool bias_term_;
};

}  // namespace caffe

#endif  // CAFFE_DEPTHWISE_CONV_LAYER_HPP_
