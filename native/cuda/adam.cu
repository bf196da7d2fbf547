// Adam and AdamW, in place, one fused elementwise pass over param, grad and the two moments
// (ops.inc; the scalars and the folded bias corrections: AdamStep in shapes.h). Memory-bound:
// float4 accesses when every pointer is 16-byte aligned. sqrtf and the division are the IEEE
// ones (no fast-math), so the GPU differs from the CPU only where FMA contracts differently.
#include "common.cuh"

namespace kg::cuda {
namespace detail {
namespace {

struct AdamKernel {
  AdamStep s;
  float* param;
  const float* grad;
  float* m;
  float* v;

  __device__ __forceinline__ void update(float& p, float g, float& mi, float& vi) const {
    g += s.l2 * p;
    mi = s.beta1 * mi + (1.0f - s.beta1) * g;
    vi = s.beta2 * vi + (1.0f - s.beta2) * (g * g);
    p = p * (1.0f - s.decay) - s.step_size * mi / (sqrtf(vi) + s.eps);
  }
  __device__ __forceinline__ void vec4(int64_t i) const {
    float4 p = ld4(param + i), mi = ld4(m + i), vi = ld4(v + i);
    const float4 g = ld4(grad + i);
    update(p.x, g.x, mi.x, vi.x);
    update(p.y, g.y, mi.y, vi.y);
    update(p.z, g.z, mi.z, vi.z);
    update(p.w, g.w, mi.w, vi.w);
    st4(param + i, p);
    st4(m + i, mi);
    st4(v + i, vi);
  }
  __device__ __forceinline__ void one(int64_t i) const {
    float p = param[i], mi = m[i], vi = v[i];
    update(p, grad[i], mi, vi);
    param[i] = p;
    m[i] = mi;
    v[i] = vi;
  }
};

}  // namespace
}  // namespace detail

void adam_update(int64_t n, const AdamStep& s, float* param, const float* grad, float* m, float* v) {
  using namespace detail;
  const bool vec = aligned16(param) && aligned16(grad) && aligned16(m) && aligned16(v);
  run_map(n, vec, AdamKernel{s, param, grad, m, v}, "launch of map_kernel<adam>",
          [&] { return describe("adam_update n=", n); });
}

}  // namespace kg::cuda
