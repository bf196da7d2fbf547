#include "conv_padding.h"

#include <algorithm>
#include <cstring>

#include "parallel.h"

namespace kg::cpu {

bool pad_explicitly(const ConvShape& s) {
  if (s.ph == 0 && s.pw == 0) return false;
  // Bounded first, so that the padded plane's size below cannot overflow.
  if (s.ph > s.h + 64 || s.pw > s.w + 64) return false;
  const int64_t padded = (s.h + 2 * s.ph) * (s.w + 2 * s.pw);
  return padded <= 4 * s.h * s.w + 256;
}

ConvShape padded_input_shape(const ConvShape& s) {
  ConvShape p = s;
  p.h = s.h + 2 * s.ph;
  p.w = s.w + 2 * s.pw;
  p.ph = p.pw = 0;
  return p;
}

namespace {

// Calls f(plane) for every (sample, channel) plane, in parallel when the copy is large.
template <class F>
void for_each_plane(const ConvShape& s, F&& f) {
  const int64_t planes = s.n * s.c, padded = (s.h + 2 * s.ph) * (s.w + 2 * s.pw);
  parallel_range(planes, std::max<int64_t>(1, kElementwiseGrain / std::max<int64_t>(1, padded)),
                 [&](int64_t first, int64_t last) {
                   for (int64_t pl = first; pl < last; ++pl) f(pl);
                 });
}

}  // namespace

void pad_planes(const ConvShape& s, const float* x, float* xp) {
  const int64_t W = s.w + 2 * s.pw, H = s.h + 2 * s.ph;
  for_each_plane(s, [&](int64_t pl) {
    const float* in = x + pl * s.h * s.w;
    float* out = xp + pl * H * W;
    if (s.h == 0) return std::fill(out, out + H * W, 0.0f);
    std::fill(out, out + s.ph * W + s.pw, 0.0f);  // the top rows and the first row's left border
    for (int64_t i = 0; i < s.h; ++i) {
      float* row = out + (s.ph + i) * W + s.pw;
      std::memcpy(row, in + i * s.w, size_t(s.w) * sizeof(float));
      // This row's right border and the next row's left one (or the bottom rows after the last).
      std::fill(row + s.w, i + 1 < s.h ? row + s.w + 2 * s.pw : out + H * W, 0.0f);
    }
  });
}

void crop_planes(const ConvShape& s, const float* dxp, float* dx) {
  const int64_t W = s.w + 2 * s.pw, H = s.h + 2 * s.ph;
  for_each_plane(s, [&](int64_t pl) {
    const float* in = dxp + pl * H * W + s.ph * W + s.pw;
    float* out = dx + pl * s.h * s.w;
    for (int64_t i = 0; i < s.h; ++i) std::memcpy(out + i * s.w, in + i * W, size_t(s.w) * sizeof(float));
  });
}

}  // namespace kg::cpu
