// Backward data of a strided convolution, phase by phase. With stride sh, output row oy meets the
// padded input's rows oy * sh + ki: padded row Y = u * sh + a (a < sh) is reached by the taps ki =
// a + m * sh only, from output rows u - m. So the rows of one phase a of dx are
//
//   dx[Y = u * sh + a] = sum over m < mh of  w[ki = a + m * sh] * dy[u - m],   mh = ceil((kh - a) / sh)
//
// -- a stride-1 convolution of dy with mh taps, turned around and padded by mh - 1 -- and likewise
// along the columns. The sh x sw phases of dx are then sh x sw small stride-1 convolutions on the
// shifted path (conv2d_shifted.h), all reading one prepared copy of each sample of dy, their
// outputs interleaved into dx. (im2col's adjoint, the other way, scatters every column of a GEMM's
// result back into dx one tap at a time: the stride-2 layer of a CIFAR ResNet, 128x16x32x32 by 32
// filters, took 2.9-3.6 ms that way and 1.9-2.4 ms this way, on 2 cores.)
//
// A phase's convolution computes outputs u < oh + mh - 1, of which those outside the image (Y <
// ph, or past it) are dropped; dx rows past the last one (dy reaching none of their taps) are zero.
// Each element of dx is the sum of one phase's convolution, whatever the thread count.
#include <algorithm>
#include <vector>

#include "conv2d_shifted.h"
#include "gemm_driver.h"
#include "parallel.h"
#include "scratch.h"
#include "simd.h"
#include "memory_hints.h"

namespace kg::cpu {
namespace {

// The largest stride taken (a larger one keeps im2col's adjoint).
constexpr int64_t kMaxStride = 8;

// Phase (a, b)'s convolution over dy (filters: s's K input channels to its C output channels).
ConvShape phase_conv(const ConvShape& s, int64_t a, int64_t b) {
  const int64_t mh = ceil_div(s.kh - a, s.sh), mw = ceil_div(s.kw - b, s.sw);
  return ConvShape{s.n, s.k, s.oh, s.ow, s.c, mh, mw, 1, 1, mh - 1, mw - 1, s.oh + mh - 1, s.ow + mw - 1, 1};
}

// Its filters: turned[ci, k, m', n'] = w[k, ci, a + (mh - 1 - m') * sh, b + (mw - 1 - n') * sw].
std::vector<float> phase_filters(const ConvShape& s, const ConvShape& t, int64_t a, int64_t b, const float* w) {
  std::vector<float> turned(size_t(s.c * s.k * t.kh * t.kw));
  for (int64_t ci = 0; ci < s.c; ++ci)
    for (int64_t k = 0; k < s.k; ++k)
      for (int64_t i = 0; i < t.kh; ++i)
        for (int64_t j = 0; j < t.kw; ++j)
          turned[size_t(((ci * s.k + k) * t.kh + i) * t.kw + j)] =
              w[((k * s.c + ci) * s.kh + a + (t.kh - 1 - i) * s.sh) * s.kw + b + (t.kw - 1 - j) * s.sw];
  return turned;
}

// row[2j] = even[j], row[2j + 1] = odd[j] for j < pairs: a stride-2 row of dx from its two column
// phases, in vectors (multiversioned, simd.h).
KG_MULTIVERSION void interleave_pairs(float* __restrict row, const float* __restrict even, const float* __restrict odd,
                                      int64_t pairs) {
  for (int64_t j = 0; j < pairs; ++j) {
    row[2 * j] = even[j];
    row[2 * j + 1] = odd[j];
  }
}

// The rows of dx of row phase a in one sample (C planes of h x w), from the outputs of the phases
// (a, b), b < sw (out[b]: C planes of oh_a rows of `pitch` floats, the first ow[b] of each an
// output): padded row u * sh + a, column v * sw + b, zero where u or v is past the output. Each
// row is put together in `line` (w floats) and streamed to dx (memory_hints.h), which is written
// once and, in a CIFAR ResNet, is larger than an L2 (a stride-2 layer's: 8 MiB).
void interleave(const ConvShape& s, int64_t a, int64_t oh_a, int64_t pitch, const float* const* out, const int64_t* ow,
                float* line, float* dx) {
  const int64_t u0 = ceil_div(std::max<int64_t>(0, s.ph - a), s.sh);
  for (int64_t ci = 0; ci < s.c; ++ci) {
    for (int64_t u = u0; u * s.sh + a - s.ph < s.h; ++u) {
      float* const dst = dx + (ci * s.h + u * s.sh + a - s.ph) * s.w;
      float* const row = line;
      if (u >= oh_a) {
        std::fill(row, row + s.w, 0.0f);
        stream_copy(dst, row, s.w);
        continue;
      }
      int64_t ix = 0;
      if (s.sw == 2) {
        // Column 2j is column phase pw % 2 at v = j + pw / 2, column 2j + 1 the other at j + (pw + 1) / 2.
        const int64_t be = s.pw % 2, bo = 1 - be, ve = s.pw / 2, vo = (s.pw + 1) / 2;
        const int64_t pairs = std::max<int64_t>(0, std::min({s.w / 2, ow[be] - ve, ow[bo] - vo}));
        interleave_pairs(row, out[be] + (ci * oh_a + u) * pitch + ve, out[bo] + (ci * oh_a + u) * pitch + vo, pairs);
        ix = 2 * pairs;
      }
      for (; ix < s.w; ++ix) {
        const int64_t b = (ix + s.pw) % s.sw, v = (ix + s.pw) / s.sw;
        row[ix] = v < ow[b] ? out[b][(ci * oh_a + u) * pitch + v] : 0.0f;
      }
      stream_copy(dst, row, s.w);
    }
  }
}

}  // namespace

bool strided_backward_data(const ConvShape& s, const float* dy, const float* w, float* dx) {
  if (s.groups != 1 || (s.sh == 1 && s.sw == 1) || s.sh < 1 || s.sw < 1 || s.sh > s.kh || s.sw > s.kw) return false;
  if (s.sh > kMaxStride || s.sw > kMaxStride) return false;
  // Phase (0, 0) has the most taps (ceil(kh / sh) x ceil(kw / sw)) and the widest padding: dy
  // prepared for its convolution serves every phase, whose taps are a corner of its taps and whose
  // output rows and columns are its first ones.
  const ConvShape first = phase_conv(s, 0, 0);
  if (!shifted_conv(first)) return false;
  const ShiftedInput common(first);
  std::vector<ShiftedConv> phases;  // phase (a, b) at a * sw + b
  phases.reserve(size_t(s.sh * s.sw));
  for (int64_t a = 0; a < s.sh; ++a) {
    for (int64_t b = 0; b < s.sw; ++b) {
      const ConvShape t = phase_conv(s, a, b);
      phases.emplace_back(t, phase_filters(s, t, a, b, w).data(), common.view(first, t, first.kh - t.kh, first.kw - t.kw));
    }
  }
  // Each phase's outputs: C planes of at most phase (0, 0)'s wide columns.
  const int64_t slot = s.c * common.wide;
  // Tasks are samples: dy's sample prepared once, every phase's convolution, then interleaved.
  const int64_t image = s.c * s.h * s.w;
  const double flops = 2.0 * double(s.n) * double(s.k * s.oh * s.ow) * double(s.c * s.kh * s.kw);
  parallel_for_dynamic(s.n, flops >= kGemmParallelFlops, [&](int64_t sample) {
    float* xp = scratch(Scratch::Columns, size_t(common.floats));
    float* out = scratch(Scratch::Block, size_t(slot * s.sh * s.sw));
    float* line = scratch(Scratch::PackA, size_t(s.w));
    common.prepare(first, dy, sample, xp);
    const float* phase_out[kMaxStride * kMaxStride];
    for (size_t p = 0; p < phases.size(); ++p) {  // each output over its wide columns
      float* o = out + int64_t(p) * slot;
      for (int64_t c = 0; c < phases[p].chunks; ++c) phases[p].chunk(xp, c, nullptr, o);
      phase_out[p] = o;
    }
    for (int64_t a = 0; a < s.sh; ++a) {
      int64_t ow[kMaxStride];
      for (int64_t b = 0; b < s.sw; ++b) ow[b] = phases[size_t(a * s.sw + b)].s.ow;
      interleave(s, a, phases[size_t(a * s.sw)].s.oh, common.pitch, phase_out + a * s.sw, ow, line, dx + sample * image);
    }
    stream_fence();
  });
  return true;
}

}  // namespace kg::cpu
