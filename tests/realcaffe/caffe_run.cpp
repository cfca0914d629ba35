// Test harness: runs a Caffe net in a real Caffe build (CPU) and dumps its blobs.
//
//   caffe_run NET.prototxt WEIGHTS.caffemodel|- IO_DIR [--backward]
//   caffe_run --train SOLVER.prototxt WEIGHTS.caffemodel|- IO_DIR ITERATIONS
//   caffe_run --time NET.prototxt WEIGHTS.caffemodel|- IO_DIR REPEATS
//
// IO_DIR/in_<k>.bin feeds the k-th net input (order of net.input_blobs()), reshaping it to the
// file's shape.  After Forward, every blob is written to IO_DIR/blob_<k>.bin, k in the order of
// IO_DIR/blobs.txt (one name a line).  With --backward, IO_DIR/topdiff_<j>.bin sets the diff of
// the blob named on line j of IO_DIR/topdiffs.txt (other blobs get a zero diff), Backward runs, and the diffs of every blob and of
// every learnable parameter are written to IO_DIR/diff_<k>.bin and IO_DIR/param_<layer>_<j>.bin
// (layers listed in IO_DIR/layers.txt).  File format: int32 rank, int32 dims[rank], float32 data.
//
// --train reads the solver and its train/test nets as `caffe train` would (paths relative to the
// solver's folder), replaces each data layer (AnnotatedData, Data, ...) by an Input layer fed
// IO_DIR/in_<k>.bin (its tops in order: data, label), and runs ITERATIONS solver steps on that fixed
// batch on the CPU, with no snapshots; the loss before each step goes to IO_DIR/losses.txt. The test
// net, built the same way with the trained weights, runs once; its blobs are written as above.
//
// --time runs Forward once to warm up, then REPEATS times whole and REPEATS times layer by layer
// (Net::ForwardFromTo), and writes IO_DIR/times.txt: "total<TAB>ms" with the median whole-net time,
// then "name<TAB>type<TAB>ms" with each layer's median (for bench/bench_real_caffe.py).
// Caffe's CHECK failures abort with glog's message on stderr: the Python side runs this program in a
// subprocess so that a rejected net becomes a readable test failure.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
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

bool is_data_layer(const std::string& type) {
  return type == "AnnotatedData" || type == "Data" || type == "ImageData" || type == "DummyData";
}

// Data layers become Input layers shaped like the IO_DIR/in_<k>.bin files, k counting their tops.
void feed_from_files(caffe::NetParameter* net, const std::string& io) {
  int k = 0;
  for (int i = 0; i < net->layer_size(); ++i) {
    caffe::LayerParameter* layer = net->mutable_layer(i);
    if (!is_data_layer(layer->type())) continue;
    caffe::LayerParameter input;
    input.set_name(layer->name());
    input.set_type("Input");
    input.mutable_include()->CopyFrom(layer->include());
    for (int t = 0; t < layer->top_size(); ++t, ++k) {
      std::vector<int> shape;
      std::vector<float> data;
      if (!read_tensor(io + "/in_" + std::to_string(k) + ".bin", &shape, &data)) {
        std::cerr << "missing " << io << "/in_" << k << ".bin for " << layer->top(t) << "\n";
        std::exit(2);
      }
      input.add_top(layer->top(t));
      caffe::BlobShape* blob_shape = input.mutable_input_param()->add_shape();
      for (int d : shape) blob_shape->add_dim(d);
    }
    layer->CopyFrom(input);
  }
}

void set_inputs(caffe::Net<float>* net, const std::string& io) {
  std::vector<int> shape;
  std::vector<float> data;
  const std::vector<Blob<float>*>& inputs = net->input_blobs();
  for (size_t k = 0; k < inputs.size(); ++k) {
    if (!read_tensor(io + "/in_" + std::to_string(k) + ".bin", &shape, &data)) {
      std::cerr << "missing " << io << "/in_" << k << ".bin\n";
      std::exit(2);
    }
    inputs[k]->Reshape(shape);
    std::copy(data.begin(), data.end(), inputs[k]->mutable_cpu_data());
  }
  net->Reshape();
}

void write_blobs(const caffe::Net<float>& net, const std::string& io) {
  const std::vector<std::string>& names = net.blob_names();
  const std::vector<boost::shared_ptr<Blob<float> > >& blobs = net.blobs();
  std::ofstream listing(io + "/blobs.txt");
  for (size_t k = 0; k < blobs.size(); ++k) {
    listing << names[k] << "\n";
    write_tensor(io + "/blob_" + std::to_string(k) + ".bin", blobs[k]->shape(), blobs[k]->cpu_data());
  }
}

int train(const std::string& solver_path, const std::string& weights, const std::string& io, int iterations) {
  const std::string dir = solver_path.substr(0, solver_path.find_last_of('/') + 1);
  caffe::SolverParameter solver_param;
  caffe::ReadSolverParamsFromTextFileOrDie(solver_path, &solver_param);
  caffe::NetParameter train_net, test_net;
  caffe::ReadNetParamsFromTextFileOrDie(dir + solver_param.train_net(), &train_net);
  caffe::ReadNetParamsFromTextFileOrDie(dir + solver_param.test_net(0), &test_net);
  feed_from_files(&train_net, io);
  feed_from_files(&test_net, io);
  solver_param.clear_train_net();
  solver_param.mutable_train_net_param()->CopyFrom(train_net);
  solver_param.clear_test_net();
  solver_param.clear_test_iter();
  solver_param.set_test_initialization(false);
  solver_param.set_snapshot(0);
  solver_param.set_snapshot_after_train(false);
  solver_param.set_display(0);
  solver_param.set_solver_mode(caffe::SolverParameter_SolverMode_CPU);
  boost::shared_ptr<caffe::Solver<float> > solver(caffe::SolverRegistry<float>::CreateSolver(solver_param));
  caffe::Net<float>& net = *solver->net();
  if (weights != "-") net.CopyTrainedLayersFrom(weights);
  set_inputs(&net, io);
  std::ofstream losses(io + "/losses.txt");
  for (int i = 0; i < iterations; ++i) {
    float loss = 0;
    net.Forward(&loss);
    losses << loss << "\n";
    solver->Step(1);
  }
  test_net.mutable_state()->set_phase(caffe::TEST);
  caffe::Net<float> tester(test_net);
  tester.ShareTrainedLayersWith(&net);
  set_inputs(&tester, io);
  tester.Forward();
  write_blobs(tester, io);
  return 0;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0.0 : v[v.size() / 2];
}

int time_net(const std::string& net_path, const std::string& weights, const std::string& io, int repeats) {
  typedef std::chrono::steady_clock Clock;
  caffe::Net<float> net(net_path, caffe::TEST);
  if (weights != "-") net.CopyTrainedLayersFrom(weights);
  set_inputs(&net, io);
  net.Forward();
  std::vector<double> totals;
  for (int r = 0; r < repeats; ++r) {
    const Clock::time_point start = Clock::now();
    net.Forward();
    totals.push_back(std::chrono::duration<double, std::milli>(Clock::now() - start).count());
  }
  const int layers = static_cast<int>(net.layers().size());
  std::vector<std::vector<double> > per_layer(layers);
  for (int r = 0; r < repeats; ++r) {
    for (int i = 0; i < layers; ++i) {
      const Clock::time_point start = Clock::now();
      net.ForwardFromTo(i, i);
      per_layer[i].push_back(std::chrono::duration<double, std::milli>(Clock::now() - start).count());
    }
  }
  std::ofstream out(io + "/times.txt");
  out << "total\t" << median(totals) << "\n";
  for (int i = 0; i < layers; ++i) {
    out << net.layer_names()[i] << "\t" << net.layers()[i]->type() << "\t" << median(per_layer[i]) << "\n";
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const bool mode = argc > 1 && (std::string(argv[1]) == "--train" || std::string(argv[1]) == "--time");
  if (argc < 4 || (mode && argc != 6)) {
    std::cerr << "usage: caffe_run NET.prototxt WEIGHTS|- IO_DIR [--backward]\n"
                 "       caffe_run --train SOLVER.prototxt WEIGHTS|- IO_DIR ITERATIONS\n"
                 "       caffe_run --time NET.prototxt WEIGHTS|- IO_DIR REPEATS\n";
    return 2;
  }
  FLAGS_minloglevel = 2;  // errors only; CHECK failures still print
  google::InitGoogleLogging(argv[0]);
  caffe::Caffe::set_mode(caffe::Caffe::CPU);
  if (std::string(argv[1]) == "--train") return train(argv[2], argv[3], argv[4], std::atoi(argv[5]));
  if (std::string(argv[1]) == "--time") return time_net(argv[2], argv[3], argv[4], std::atoi(argv[5]));

  const std::string net_path = argv[1], weights = argv[2], io = argv[3];
  const bool backward = argc > 4 && std::string(argv[4]) == "--backward";

  caffe::Net<float> net(net_path, backward ? caffe::TRAIN : caffe::TEST);
  if (weights != "-") net.CopyTrainedLayersFrom(weights);

  set_inputs(&net, io);
  net.Forward();
  write_blobs(net, io);
  if (!backward) return 0;

  const std::vector<boost::shared_ptr<Blob<float> > >& blobs = net.blobs();
  for (size_t k = 0; k < blobs.size(); ++k) {
    float* diff = blobs[k]->mutable_cpu_diff();
    std::fill(diff, diff + blobs[k]->count(), 0.0f);
  }
  std::ifstream topdiff_names(io + "/topdiffs.txt");
  std::string name;
  std::vector<int> shape;
  std::vector<float> data;
  for (int j = 0; std::getline(topdiff_names, name); ++j) {
    if (!net.has_blob(name)) {
      std::cerr << "topdiffs.txt: the net has no blob '" << name << "'\n";
      return 2;
    }
    Blob<float>& blob = *net.blob_by_name(name);
    if (!read_tensor(io + "/topdiff_" + std::to_string(j) + ".bin", &shape, &data) ||
        static_cast<long long>(data.size()) != blob.count()) {
      std::cerr << "topdiff_" << j << ".bin: missing, or not " << blob.count() << " values for " << name << "\n";
      return 2;
    }
    std::copy(data.begin(), data.end(), blob.mutable_cpu_diff());
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
