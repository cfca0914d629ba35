// transpiler.kernels: ReLU6 Caffe layer (type "ReLU6"), a thin wrapper of relu6_cpu / relu6_cuda.
#ifndef CAFFE_RELU6_LAYER_HPP_
#define CAFFE_RELU6_LAYER_HPP_

#include <vector>

#include "caffe/blob.hpp"
#include "caffe/layer.hpp"
#include "caffe/layers/neuron_layer.hpp"
#include "caffe/proto/caffe.pb.h"

namespace caffe {

/**
 * @brief ReLU6: y = min(max(x, 0), 6).
 *
 * Backward passes the gradient where 0 < x < 6 and zeroes it elsewhere.  Works in place
 * (bottom == top): the mask 0 < x < 6 equals 0 < y < 6.  Takes no parameters.
 */
template <typename Dtype>
class ReLU6Layer : public NeuronLayer<Dtype> {
 public:
  explicit ReLU6Layer(const LayerParameter& param) : NeuronLayer<Dtype>(param) {}

  virtual inline const char* type() const { return "ReLU6"; }

 protected:
  virtual void Forward_cpu(const vector<Blob<Dtype>*>& bottom, const vector<Blob<Dtype>*>& top);
  virtual void Forward_gpu(const vector<Blob<Dtype>*>& bottom, const vector<Blob<Dtype>*>& top);
  virtual void Backward_cpu(const vector<Blob<Dtype>*>& top, const vector<bool>& propagate_down,
                            const vector<Blob<Dtype>*>& bottom);
  virtual void Backward_gpu(const vector<Blob<Dtype>*>& top, const vector<bool>& propagate_down,
                            const vector<Blob<Dtype>*>& bottom);
};

}  // namespace caffe

#endif  // CAFFE_RELU6_LAYER_HPP_
