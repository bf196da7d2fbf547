// Max pooling with padding, plane by plane (one (sample, channel) image), in parallel over planes.
// Backward scatters each output's gradient onto its argmax pixel in output order: within a plane
// that order is fixed, so the sums are deterministic without any gather.
#include <algorithm>
#include <cmath>
#include <limits>

#include "kg/ops.h"
#include "parallel.h"

namespace kg::cpu {
namespace {

template <class F>
void for_plane_chunks(const MaxPoolShape& s, F&& f) {
  const int64_t plane = std::max<int64_t>(1, s.h * s.w);
  parallel_range(s.n * s.c, std::max<int64_t>(1, kElementwiseGrain / plane), f);
}

// The shape is taken by value so that its fields live in registers, not behind a reference.
void forward_plane(const MaxPoolShape s, const float* in, float* out, float* arg) {
  for (int64_t i = 0; i < s.oh; ++i) {
    const int64_t r0 = std::max<int64_t>(0, i * s.sh - s.ph), r1 = std::min(s.h, i * s.sh - s.ph + s.kh);
    for (int64_t j = 0; j < s.ow; ++j) {
      const int64_t c0 = std::max<int64_t>(0, j * s.sw - s.pw), c1 = std::min(s.w, j * s.sw - s.pw + s.kw);
      float best = -std::numeric_limits<float>::infinity();
      int64_t where = r0 * s.w + c0;
      for (int64_t r = r0; r < r1; ++r) {
        for (int64_t c = c0; c < c1; ++c) {
          const float v = in[r * s.w + c];
          // Strictly greater keeps the first of equal maxima; the first NaN wins and stays.
          if (v > best || (std::isnan(v) && !std::isnan(best))) {
            best = v;
            where = r * s.w + c;
          }
        }
      }
      out[i * s.ow + j] = best;
      arg[i * s.ow + j] = static_cast<float>(where);
    }
  }
}

}  // namespace

void maxpool2d_forward(const MaxPoolShape& s, const float* x, float* y, float* argmax) {
  for_plane_chunks(s, [&](int64_t first, int64_t last) {
    for (int64_t pl = first; pl < last; ++pl) {
      forward_plane(s, x + pl * s.h * s.w, y + pl * s.oh * s.ow, argmax + pl * s.oh * s.ow);
    }
  });
}

void maxpool2d_backward(const MaxPoolShape& s, const float* dy, const float* argmax, float* dx) {
  const int64_t plane = s.h * s.w, outs = s.oh * s.ow;
  for_plane_chunks(s, [&](int64_t first, int64_t last) {
    for (int64_t pl = first; pl < last; ++pl) {
      float* out = dx + pl * plane;
      const float* g = dy + pl * outs;
      const float* a = argmax + pl * outs;
      std::fill(out, out + plane, 0.0f);
      for (int64_t o = 0; o < outs; ++o) {
        // Indices come from maxpool2d_forward, but a foreign buffer (NaN, negative, too large)
        // must not write outside the plane; compared as floats before the (then defined) cast.
        const float p = a[o];
        if (p >= 0.0f && p < static_cast<float>(plane)) out[static_cast<int64_t>(p)] += g[o];
      }
    }
  });
}

}  // namespace kg::cpu
