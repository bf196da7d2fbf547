// SGD with momentum and L2 weight decay, in place, one fused elementwise pass:
//   g = grad + weight_decay * param;  velocity = momentum * velocity + g;
//   param -= lr * velocity, or with Nesterov param -= lr * (g + momentum * velocity)
// (without a velocity buffer: param -= lr * g). One kernel reads each array once and writes the
// updated ones once, instead of three separate axpby passes.
#include "common.cuh"

namespace kg::cuda {
namespace detail {
namespace {

template <bool kMomentum, bool kNesterov>
struct SgdStep {
  float lr, momentum, weight_decay;
  float* param;
  const float* grad;
  float* velocity;  // unused (null) without momentum

  __device__ __forceinline__ void update(float& p, float g, float& v) const {
    g += weight_decay * p;
    if (kMomentum) {
      // With momentum 0 the buffer's old contents are not read at all (0 * NaN would be NaN).
      v = momentum == 0.0f ? g : momentum * v + g;
      p -= lr * (kNesterov ? g + momentum * v : v);
    } else {
      p -= lr * g;
    }
  }
  __device__ __forceinline__ void vec4(int64_t i) const {
    float4 p = ld4(param + i);
    const float4 g = ld4(grad + i);
    float4 v = kMomentum ? ld4(velocity + i) : make_float4(0.f, 0.f, 0.f, 0.f);
    update(p.x, g.x, v.x);
    update(p.y, g.y, v.y);
    update(p.z, g.z, v.z);
    update(p.w, g.w, v.w);
    st4(param + i, p);
    if (kMomentum) st4(velocity + i, v);
  }
  __device__ __forceinline__ void one(int64_t i) const {
    float p = param[i], v = kMomentum ? velocity[i] : 0.0f;
    update(p, grad[i], v);
    param[i] = p;
    if (kMomentum) velocity[i] = v;
  }
};

// One parameter per blockIdx.y: the same update as map_kernel<SgdStep>, with the rate read from
// device memory (so that a replayed graph uses the rate of the step it replays).
template <bool kMomentum, bool kNesterov>
__global__ void __launch_bounds__(kMapThreads) sgd_many_kernel(SgdGroup g, const float* lr) {
  const SgdTensor& t = g.items[blockIdx.y];
  const SgdStep<kMomentum, kNesterov> step{lr[0], g.momentum, t.weight_decay, t.param, t.grad, t.velocity};
  const bool vec = aligned16(t.param) && aligned16(t.grad) && (!kMomentum || aligned16(t.velocity));
  map_loop(t.n, vec, step);
}

}  // namespace
}  // namespace detail

void sgd_update_many(const SgdGroup& g, const float* lr) {
  using namespace detail;
  if (g.count <= 0) return;
  int64_t largest = 0;
  for (int i = 0; i < g.count; ++i) largest = std::max(largest, g.items[i].n);
  if (largest == 0) return;
  const dim3 grid(grid_for(ceil_div<int64_t>(largest, 4), kMapThreads), static_cast<unsigned>(g.count));
  const bool momentum = g.items[0].velocity != nullptr;
  if (!momentum) {
    sgd_many_kernel<false, false><<<grid, kMapThreads, 0, stream()>>>(g, lr);
  } else if (g.nesterov && g.momentum != 0.0f) {
    sgd_many_kernel<true, true><<<grid, kMapThreads, 0, stream()>>>(g, lr);
  } else {
    sgd_many_kernel<true, false><<<grid, kMapThreads, 0, stream()>>>(g, lr);
  }
  check_launch("launch of sgd_many_kernel", [&] { return describe("sgd_update_many count=", g.count, " largest n=", largest); });
}

void sgd_update(int64_t n, float lr, float momentum, float weight_decay, bool nesterov, float* param,
                const float* grad, float* velocity) {
  using namespace detail;
  auto sizes = [&] { return describe("sgd_update n=", n); };
  const bool vec = aligned16(param) && aligned16(grad) && (!velocity || aligned16(velocity));
  const char* name = "launch of map_kernel<sgd>";
  // The velocity buffer is kept up to date whenever there is one, even with momentum == 0 (then
  // v = g and Nesterov's g + 0 * v is plain SGD, like the CPU kernel).
  if (!velocity) {
    run_map(n, vec, SgdStep<false, false>{lr, momentum, weight_decay, param, grad, nullptr}, name, sizes);
  } else if (nesterov && momentum != 0.0f) {
    run_map(n, vec, SgdStep<true, true>{lr, momentum, weight_decay, param, grad, velocity}, name, sizes);
  } else {
    run_map(n, vec, SgdStep<true, false>{lr, momentum, weight_decay, param, grad, velocity}, name, sizes);
  }
}

}  // namespace kg::cuda
