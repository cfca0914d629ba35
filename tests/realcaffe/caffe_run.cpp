// Test harness: runs a Caffe net in a real Caffe build (CPU) and dumps its blobs.
//
//   caffe_run NET.prototxt WEIGHTS.caffemodel|- IO_DIR [--backward]
//
// IO_DIR/in_<k>.bin feeds the k-th net input (order of net.input_blobs()), reshaping it to the
// file's shape.  After Forward, every blob is written to IO_DIR/blob_<k>.bin, k in the order of
// IO_DIR/blobs.txt (one name a line).  With --backward, IO_DIR/topdiff_<k>.bin sets the diff of
// blob k (blobs without a file get a zero diff), Backward runs, and the diffs of every blob and of
// every learnable parameter are written to IO_DIR/diff_<k>.bin and IO_DIR/param_<layer>_<j>.bin
// (layers listed in IO_DIR/layers.txt).  File format: int32 rank, int32 dims[rank], float32 data.
// Caffe's CHECK failures abort with glog's message on stderr: the Python side runs this program in a
// subprocess so that a rejected net becomes a readable test failure.
#include <cstdint>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "caffe/caffe.hpp"

namespace {

using caffe::Blob;

bool read_tensor(const std::string& path, std::vector<int>* shape, std::vector<float>* data) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  int32_t rank = 0;
  in.read(reinterpret_cast<char*>(&rank), sizeof rank);
  shape->assign(rank, 0);
  long long count = 1;
  for (int i = 0; i < rank; ++i) {
    int32_t d = 0;
    in.read(reinterpret_cast<char*>(&d), sizeof d);
    (*shape)[i] = d;
    count *= d;
  }
  data->resize(count);
  in.read(reinterpret_cast<char*>(data->data()), count * sizeof(float));
  if (!in) {
    std::cerr << path << ": truncated tensor file\n";
    std::exit(2);
  }
  return true;
}

void write_tensor(const std::string& path, const std::vector<int>& shape, const float* data) {
  std::ofstream out(path, std::ios::binary);
  const int32_t rank = static_cast<int32_t>(shape.size());
  out.write(reinterpret_cast<const char*>(&rank), sizeof rank);
  long long count = 1;
  for (int d : shape) {
    const int32_t d32 = d;
    out.write(reinterpret_cast<const char*>(&d32), sizeof d32);
    count *= d;
  }
  out.write(reinterpret_cast<const char*>(data), count * sizeof(float));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) {
    std::cerr << "usage: caffe_run NET.prototxt WEIGHTS|- IO_DIR [--backward]\n";
    return 2;
  }
  const std::string net_path = argv[1], weights = argv[2], io = argv[3];
  const bool backward = argc > 4 && std::string(argv[4]) == "--backward";
  FLAGS_minloglevel = 2;  // errors only; CHECK failures still print
  google::InitGoogleLogging(argv[0]);
  caffe::Caffe::set_mode(caffe::Caffe::CPU);

  caffe::Net<float> net(net_path, backward ? caffe::TRAIN : caffe::TEST);
  if (weights != "-") net.CopyTrainedLayersFrom(weights);

  std::vector<int> shape;
  std::vector<float> data;
  const std::vector<Blob<float>*>& inputs = net.input_blobs();
  for (size_t k = 0; k < inputs.size(); ++k) {
    if (!read_tensor(io + "/in_" + std::to_string(k) + ".bin", &shape, &data)) {
      std::cerr << "missing " << io << "/in_" << k << ".bin\n";
      return 2;
    }
    inputs[k]->Reshape(shape);
    std::copy(data.begin(), data.end(), inputs[k]->mutable_cpu_data());
  }
  net.Reshape();
  net.Forward();

  const std::vector<std::string>& names = net.blob_names();
  const std::vector<boost::shared_ptr<Blob<float> > >& blobs = net.blobs();
  std::ofstream listing(io + "/blobs.txt");
  for (size_t k = 0; k < blobs.size(); ++k) {
    listing << names[k] << "\n";
    write_tensor(io + "/blob_" + std::to_string(k) + ".bin", blobs[k]->shape(), blobs[k]->cpu_data());
  }
  if (!backward) return 0;

  for (size_t k = 0; k < blobs.size(); ++k) {
    float* diff = blobs[k]->mutable_cpu_diff();
    std::fill(diff, diff + blobs[k]->count(), 0.0f);
    if (read_tensor(io + "/topdiff_" + std::to_string(k) + ".bin", &shape, &data)) {
      if (static_cast<long long>(data.size()) != blobs[k]->count()) {
        std::cerr << "topdiff_" << k << ": " << data.size() << " values for " << blobs[k]->count() << "\n";
        return 2;
      }
      std::copy(data.begin(), data.end(), diff);
    }
  }
  net.ClearParamDiffs();
  net.Backward();
  for (size_t k = 0; k < blobs.size(); ++k) {
    write_tensor(io + "/diff_" + std::to_string(k) + ".bin", blobs[k]->shape(), blobs[k]->cpu_diff());
  }
  std::ofstream layer_list(io + "/layers.txt");
  for (size_t i = 0; i < net.layers().size(); ++i) {
    layer_list << net.layer_names()[i] << "\n";
    const std::vector<boost::shared_ptr<Blob<float> > >& params = net.layers()[i]->blobs();
    for (size_t j = 0; j < params.size(); ++j) {
      write_tensor(io + "/param_" + std::to_string(i) + "_" + std::to_string(j) + ".bin", params[j]->shape(),
                   params[j]->cpu_diff());
    }
  }
  return 0;
}
