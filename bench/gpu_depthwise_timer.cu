// Benchmark helper for bench/gpu_depthwise.py: times our CUDA depthwise forward with CUDA events.
//   hot : one CUDA graph of `hot_iters` back-to-back launches (no CPU launch overhead, L2 warm),
//         replayed 3 times; microseconds per launch.
//   cold: `cold_iters` single launches, each after overwriting a `flush_bytes` buffer (evicts L2);
//         median microseconds of the launch alone (events bracket only the kernel).
// Buffers are allocated and filled here, so no PyTorch is needed.  Returns 0 or a cudaError_t value.
#include <algorithm>
#include <cstring>
#include <vector>

#include "depthwise_conv_cuda.hpp"
#include "depthwise_conv_cuda_point.hpp"

#define TKB_TRY(expr)                              \
  do {                                             \
    const cudaError_t tkb_e = (expr);              \
    if (tkb_e != cudaSuccess) return tkb_e;        \
  } while (0)

namespace {

__global__ void fill_kernel(float* p, long long n, float scale) {
  for (long long i = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<long long>(gridDim.x) * blockDim.x) {
    p[i] = scale * static_cast<float>((i * 7919) % 1009) / 1009.0f - 0.5f * scale;
  }
}

struct Buffers {
  float* x;
  float* w;
  float* b;
  float* y;
  void* flush;
  cudaStream_t s;
  cudaEvent_t e0, e1;
  cudaGraph_t graph;
  cudaGraphExec_t exec;
  Buffers() : x(NULL), w(NULL), b(NULL), y(NULL), flush(NULL), s(NULL), e0(NULL), e1(NULL), graph(NULL),
              exec(NULL) {}
  ~Buffers() {
    if (exec) cudaGraphExecDestroy(exec);
    if (graph) cudaGraphDestroy(graph);
    if (e0) cudaEventDestroy(e0);
    if (e1) cudaEventDestroy(e1);
    if (s) cudaStreamDestroy(s);
    cudaFree(x);
    cudaFree(w);
    cudaFree(b);
    cudaFree(y);
    cudaFree(flush);
  }
};

// Our forward with `vec` outputs per thread (0: the launcher's own choice), as a cudaError_t.
cudaError_t launch(const int* geom, const Buffers& bf, int vec) {
  return static_cast<cudaError_t>(tk_dwconv_forward_cuda_vec_f32(geom, bf.x, bf.w, bf.b, bf.y, vec, bf.s));
}

}  // namespace

extern "C" {

// Device 0's name and memory system; peak DRAM bandwidth = 2 * clock * bus_width / 8.
int tk_bench_device_info(char* name, int name_len, int* mem_clock_khz, int* bus_width_bits, int* l2_bytes,
                         int* sm_count, int* cc_major, int* cc_minor) {
  cudaDeviceProp prop;
  TKB_TRY(cudaGetDeviceProperties(&prop, 0));
  std::strncpy(name, prop.name, name_len - 1);
  name[name_len - 1] = '\0';
  TKB_TRY(cudaDeviceGetAttribute(mem_clock_khz, cudaDevAttrMemoryClockRate, 0));
  TKB_TRY(cudaDeviceGetAttribute(bus_width_bits, cudaDevAttrGlobalMemoryBusWidth, 0));
  TKB_TRY(cudaDeviceGetAttribute(l2_bytes, cudaDevAttrL2CacheSize, 0));
  TKB_TRY(cudaDeviceGetAttribute(sm_count, cudaDevAttrMultiProcessorCount, 0));
  *cc_major = prop.major;
  *cc_minor = prop.minor;
  return 0;
}

int tk_bench_default_vec(const int* geom) {
  tk::DepthwiseGeometry g;
  if (tk::depthwise_geometry_init(geom, &g) != 0) return -1;
  return tk::dw_default_vec(g);
}

// vec: outputs per thread, 0 = launcher's choice (see tk_dwconv_forward_cuda_vec_f32); -2 if not applicable.
int tk_bench_dwconv_forward(const int* geom, int vec, int hot_iters, int cold_iters, long long flush_bytes,
                            float* hot_us, float* cold_us) {
  tk::DepthwiseGeometry g;
  if (tk::depthwise_geometry_init(geom, &g) != 0) return -1;
  if (vec != 0 && vec != 1 && !tk::dw_strip_applies(g)) return -2;
  const long long nx = static_cast<long long>(g.num) * g.channels * g.height * g.width;
  const long long oc = static_cast<long long>(g.channels) * g.multiplier;
  const long long nw = oc * g.kernel_h * g.kernel_w;
  const long long ny = static_cast<long long>(g.num) * oc * g.out_h * g.out_w;
  Buffers bf;
  TKB_TRY(cudaMalloc(reinterpret_cast<void**>(&bf.x), nx * sizeof(float)));
  TKB_TRY(cudaMalloc(reinterpret_cast<void**>(&bf.w), nw * sizeof(float)));
  TKB_TRY(cudaMalloc(reinterpret_cast<void**>(&bf.b), oc * sizeof(float)));
  TKB_TRY(cudaMalloc(reinterpret_cast<void**>(&bf.y), ny * sizeof(float)));
  if (flush_bytes > 0) TKB_TRY(cudaMalloc(&bf.flush, flush_bytes));
  TKB_TRY(cudaStreamCreateWithFlags(&bf.s, cudaStreamNonBlocking));
  TKB_TRY(cudaEventCreate(&bf.e0));
  TKB_TRY(cudaEventCreate(&bf.e1));
  fill_kernel<<<1024, 256, 0, bf.s>>>(bf.x, nx, 2.0f);
  fill_kernel<<<64, 256, 0, bf.s>>>(bf.w, nw, 1.0f);
  fill_kernel<<<16, 256, 0, bf.s>>>(bf.b, oc, 0.5f);
  TKB_TRY(cudaGetLastError());
  // Warm-up (and first-launch costs).
  for (int i = 0; i < 3; ++i) TKB_TRY(launch(geom, bf, vec));
  TKB_TRY(cudaStreamSynchronize(bf.s));

  // Hot: a graph of hot_iters launches; fall back to an eager loop if capture is refused.
  bool graphed = cudaStreamBeginCapture(bf.s, cudaStreamCaptureModeThreadLocal) == cudaSuccess;
  if (graphed) {
    for (int i = 0; i < hot_iters; ++i) launch(geom, bf, vec);
    graphed = cudaStreamEndCapture(bf.s, &bf.graph) == cudaSuccess &&
              cudaGraphInstantiate(&bf.exec, bf.graph, 0) == cudaSuccess;
    cudaGetLastError();
  }
  const int replays = 3;
  if (graphed) {
    TKB_TRY(cudaGraphLaunch(bf.exec, bf.s));  // warm the graph
    TKB_TRY(cudaEventRecord(bf.e0, bf.s));
    for (int r = 0; r < replays; ++r) TKB_TRY(cudaGraphLaunch(bf.exec, bf.s));
    TKB_TRY(cudaEventRecord(bf.e1, bf.s));
  } else {
    TKB_TRY(cudaEventRecord(bf.e0, bf.s));
    for (int r = 0; r < replays * hot_iters; ++r) {
      TKB_TRY(launch(geom, bf, vec));
    }
    TKB_TRY(cudaEventRecord(bf.e1, bf.s));
  }
  TKB_TRY(cudaEventSynchronize(bf.e1));
  float ms = 0.0f;
  TKB_TRY(cudaEventElapsedTime(&ms, bf.e0, bf.e1));
  *hot_us = ms * 1000.0f / (replays * hot_iters);

  // Cold: evict L2 before each timed launch.
  std::vector<float> times;
  for (int i = 0; i < cold_iters; ++i) {
    if (bf.flush) TKB_TRY(cudaMemsetAsync(bf.flush, i & 0xff, flush_bytes, bf.s));
    TKB_TRY(cudaEventRecord(bf.e0, bf.s));
    TKB_TRY(launch(geom, bf, vec));
    TKB_TRY(cudaEventRecord(bf.e1, bf.s));
    TKB_TRY(cudaEventSynchronize(bf.e1));
    TKB_TRY(cudaEventElapsedTime(&ms, bf.e0, bf.e1));
    times.push_back(ms * 1000.0f);
  }
  std::sort(times.begin(), times.end());
  *cold_us = times.empty() ? 0.0f : times[times.size() / 2];
  return 0;
}

}  // extern "C"
