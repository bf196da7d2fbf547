// 2-D convolution as GEMMs over an im2col buffer.
//
// For one sample, lay out the input patches as a matrix col (c*kh*kw rows, oh*ow columns): row
// (c, p, q), column (i, j) holds x[c, i*sh + p - ph, j*sw + q - pw] (0 in the padding). Then
//   forward:          y[b]   = W (k x ckk) * col[b]              (one batched GEMM for a chunk)
//   backward data:    dcol[b] = W^T * dy[b], then dx = col2im(dcol) (a gather, see below)
//   backward weight:  dW = sum_b dy[b] * col[b]^T
// The col buffers come from the caching allocator and cover a chunk of samples at a time, so
// scratch memory stays bounded (kScratchFloats) whatever the batch size.
//
// Backward weight must be deterministic, so there are no atomics: the sum over samples and pixels
// becomes the k loop of one GEMM. dy is permuted to dyT (k, samples*oh*ow) and the patches are
// written transposed, colT (ckk, samples*oh*ow); then dW = dyT * colT^T, whose reduction over
// samples*oh*ow runs inside the GEMM (split over several blocks and added in a fixed order when
// the output is small). Chunks of samples add into dW in chunk order.
//
// col2im is a gather for the same reason: each input pixel adds up the entries of dcol that came
// from it, in a fixed (p, q) order.
//
// A 1x1 convolution with stride 1 and no padding needs no col at all: col[b] is x[b] itself.
//
// Grouped convolution: im2col, col2im and the dy permutation see all channels as usual. Group g's
// patch rows, filters and output channels are contiguous slices of col, W and y (g * ckk/groups
// rows on, and so on), so each GEMM above becomes one per group over those slices (gemm_groups).
#include "common.cuh"

namespace kg::cuda {
namespace detail {
namespace {

constexpr int kThreads = 256;
constexpr int64_t kScratchFloats = int64_t{1} << 25;  // 128 MiB of col buffers per call at most

int64_t patch_rows(const ConvShape& s) { return s.c * s.kh * s.kw; }
int64_t group_rows(const ConvShape& s) { return patch_rows(s) / s.groups; }  // patch rows of one group
int64_t group_filters(const ConvShape& s) { return s.k / s.groups; }
int64_t out_pixels(const ConvShape& s) { return s.oh * s.ow; }
bool is_pointwise(const ConvShape& s) {
  return s.kh == 1 && s.kw == 1 && s.sh == 1 && s.sw == 1 && s.ph == 0 && s.pw == 0;
}
// Samples per chunk when each sample needs `per_sample` floats of scratch.
int64_t chunk_samples(int64_t per_sample, int64_t n) {
  return std::max<int64_t>(1, std::min(n, kScratchFloats / std::max<int64_t>(per_sample, 1)));
}

template <typename I>
struct PatchIndex {
  using Div = typename IndexTraits<I>::Div;
  I total;              // elements of the col buffer for this chunk
  Div pixels, rows, samples, kw, kh, ow;
  I c, h, w, sh, sw, ph, pw;
};

template <typename I>
PatchIndex<I> patch_index(const ConvShape& s, int64_t samples, int64_t total) {
  using Div = typename IndexTraits<I>::Div;
  PatchIndex<I> p{};
  p.total = static_cast<I>(total);
  p.pixels = Div(out_pixels(s));
  p.rows = Div(patch_rows(s));
  p.samples = Div(samples);
  p.kw = Div(s.kw);
  p.kh = Div(s.kh);
  p.ow = Div(s.ow);
  p.c = static_cast<I>(s.c);
  p.h = static_cast<I>(s.h);
  p.w = static_cast<I>(s.w);
  p.sh = static_cast<I>(s.sh);
  p.sw = static_cast<I>(s.sw);
  p.ph = static_cast<I>(s.ph);
  p.pw = static_cast<I>(s.pw);
  return p;
}

// Writes the patch matrix of a chunk of samples, in output order (coalesced stores):
//  kSampleMajor: col[b][row][pixel]            (forward: one matrix per sample)
//  otherwise:    colT[row][b * pixels + pixel] (backward weight: samples along GEMM's k)
template <typename I, bool kSampleMajor>
__global__ void __launch_bounds__(kThreads)
    im2col_kernel(const PatchIndex<I> p, const float* __restrict__ x, float* __restrict__ col) {
  using S = typename IndexTraits<I>::Signed;
  const I step = static_cast<I>(gridDim.x) * blockDim.x;
  for (I idx = static_cast<I>(blockIdx.x) * blockDim.x + threadIdx.x; idx < p.total; idx += step) {
    const I t = p.pixels.div(idx), pixel = p.pixels.mod(idx, t);
    I b, row;
    if constexpr (kSampleMajor) {
      b = p.rows.div(t);
      row = p.rows.mod(t, b);
    } else {
      row = p.samples.div(t);
      b = p.samples.mod(t, row);
    }
    const I r2 = p.kw.div(row), q = p.kw.mod(row, r2);
    const I cc = p.kh.div(r2), pp = p.kh.mod(r2, cc);
    const I oi = p.ow.div(pixel), oj = p.ow.mod(pixel, oi);
    const S ih = static_cast<S>(oi * p.sh + pp) - static_cast<S>(p.ph);
    const S iw = static_cast<S>(oj * p.sw + q) - static_cast<S>(p.pw);
    float v = 0.0f;
    if (ih >= 0 && ih < static_cast<S>(p.h) && iw >= 0 && iw < static_cast<S>(p.w)) {
      v = x[((b * p.c + cc) * p.h + static_cast<I>(ih)) * p.w + static_cast<I>(iw)];
    }
    col[idx] = v;
  }
}

// Index arithmetic of col2im: input pixels (b, c, i, j) and the geometry to find their patches.
template <typename I>
struct ImageIndex {
  using Div = typename IndexTraits<I>::Div;
  I total;                 // elements of dx for this chunk
  Div w, h, c, sh, sw;     // dividers
  I kh, kw, oh, ow, ph, pw, stride_h, stride_w, channels;
};

template <typename I>
ImageIndex<I> image_index(const ConvShape& s, int64_t total) {
  using Div = typename IndexTraits<I>::Div;
  ImageIndex<I> p{};
  p.total = static_cast<I>(total);
  p.w = Div(s.w);
  p.h = Div(s.h);
  p.c = Div(s.c);
  p.sh = Div(s.sh);
  p.sw = Div(s.sw);
  p.kh = static_cast<I>(s.kh);
  p.kw = static_cast<I>(s.kw);
  p.oh = static_cast<I>(s.oh);
  p.ow = static_cast<I>(s.ow);
  p.ph = static_cast<I>(s.ph);
  p.pw = static_cast<I>(s.pw);
  p.stride_h = static_cast<I>(s.sh);
  p.stride_w = static_cast<I>(s.sw);
  p.channels = static_cast<I>(s.c);
  return p;
}

// dx[b, c, i, j] = sum of dcol[b][(c, p, q)][(oi, oj)] over the (p, q, oi, oj) with
// oi * sh + p - ph == i and oj * sw + q - pw == j. For fixed i, the valid p are those congruent
// to (i + ph) mod sh, and oi falls by one each time p grows by sh.
template <typename I>
__global__ void __launch_bounds__(kThreads)
    col2im_kernel(const ImageIndex<I> p, const float* __restrict__ dcol, float* __restrict__ dx) {
  const I step = static_cast<I>(gridDim.x) * blockDim.x;
  const I pixels = p.oh * p.ow;
  for (I idx = static_cast<I>(blockIdx.x) * blockDim.x + threadIdx.x; idx < p.total; idx += step) {
    const I t = p.w.div(idx), j = p.w.mod(idx, t);
    const I t2 = p.h.div(t), i = p.h.mod(t, t2);
    const I b = p.c.div(t2), cc = p.c.mod(t2, b);
    const I hp = i + p.ph, wp = j + p.pw;  // coordinates in the padded input
    const I oi0 = p.sh.div(hp), p0 = p.sh.mod(hp, oi0);
    const I oj0 = p.sw.div(wp), q0 = p.sw.mod(wp, oj0);
    const float* base = dcol + (b * p.channels + cc) * p.kh * p.kw * pixels;
    float sum = 0.0f;
    // pp <= hp keeps oi >= 0; oi only wraps below 0 when the loop is about to end.
    I oi = oi0;
    for (I pp = p0; pp < p.kh && pp <= hp; pp += p.stride_h, --oi) {
      if (oi >= p.oh) continue;
      I oj = oj0;
      for (I q = q0; q < p.kw && q <= wp; q += p.stride_w, --oj) {
        if (oj >= p.ow) continue;
        sum += base[(pp * p.kw + q) * pixels + oi * p.ow + oj];
      }
    }
    dx[idx] = sum;
  }
}

// dyT[kc][b * pixels + pixel] = dy[b][kc][pixel] for a chunk of samples.
template <typename I>
__global__ void __launch_bounds__(kThreads)
    permute_dy_kernel(I total, typename IndexTraits<I>::Div pixels_div, typename IndexTraits<I>::Div samples_div, I k,
                      const float* __restrict__ dy, float* __restrict__ dyT) {
  const I step = static_cast<I>(gridDim.x) * blockDim.x;
  for (I idx = static_cast<I>(blockIdx.x) * blockDim.x + threadIdx.x; idx < total; idx += step) {
    const I t = pixels_div.div(idx), pixel = pixels_div.mod(idx, t);
    const I kc = samples_div.div(t), b = samples_div.mod(t, kc);
    dyT[idx] = dy[(b * k + kc) * pixels_div.divisor + pixel];
  }
}

// y[b][kc][pixel] += bias[kc].
template <typename I>
__global__ void __launch_bounds__(kThreads)
    add_bias_kernel(I total, typename IndexTraits<I>::Div pixels_div, typename IndexTraits<I>::Div k_div,
                    const float* __restrict__ bias, float* __restrict__ y) {
  const I step = static_cast<I>(gridDim.x) * blockDim.x;
  for (I idx = static_cast<I>(blockIdx.x) * blockDim.x + threadIdx.x; idx < total; idx += step) {
    const I t = pixels_div.div(idx);
    const I kc = k_div.mod(t, k_div.div(t));
    y[idx] += bias[kc];
  }
}

template <class Sizes>
void im2col(const ConvShape& s, int64_t samples, bool sample_major, const float* x, float* col, const Sizes& sizes) {
  const int64_t total = samples * patch_rows(s) * out_pixels(s);
  if (total <= 0) return;
  const unsigned grid = grid_for(total, kThreads);
  if (fits_u32(std::max(total, samples * s.c * s.h * s.w))) {
    const auto p = patch_index<uint32_t>(s, samples, total);
    if (sample_major) im2col_kernel<uint32_t, true><<<grid, kThreads, 0, stream()>>>(p, x, col);
    else im2col_kernel<uint32_t, false><<<grid, kThreads, 0, stream()>>>(p, x, col);
  } else {
    const auto p = patch_index<uint64_t>(s, samples, total);
    if (sample_major) im2col_kernel<uint64_t, true><<<grid, kThreads, 0, stream()>>>(p, x, col);
    else im2col_kernel<uint64_t, false><<<grid, kThreads, 0, stream()>>>(p, x, col);
  }
  check_launch("launch of im2col_kernel", sizes);
}

template <class Sizes>
void col2im(const ConvShape& s, int64_t samples, const float* dcol, float* dx, const Sizes& sizes) {
  const int64_t total = samples * s.c * s.h * s.w;
  if (total <= 0) return;
  const unsigned grid = grid_for(total, kThreads);
  if (fits_u32(std::max(total, samples * patch_rows(s) * out_pixels(s)))) {
    col2im_kernel<uint32_t><<<grid, kThreads, 0, stream()>>>(image_index<uint32_t>(s, total), dcol, dx);
  } else {
    col2im_kernel<uint64_t><<<grid, kThreads, 0, stream()>>>(image_index<uint64_t>(s, total), dcol, dx);
  }
  check_launch("launch of col2im_kernel", sizes);
}

template <class Sizes>
void permute_dy(const ConvShape& s, int64_t samples, const float* dy, float* dyT, const Sizes& sizes) {
  const int64_t total = samples * s.k * out_pixels(s);
  if (total <= 0) return;
  const unsigned grid = grid_for(total, kThreads);
  if (fits_u32(total)) {
    permute_dy_kernel<uint32_t><<<grid, kThreads, 0, stream()>>>(
        static_cast<uint32_t>(total), DivU32(out_pixels(s)), DivU32(samples), static_cast<uint32_t>(s.k), dy, dyT);
  } else {
    permute_dy_kernel<uint64_t><<<grid, kThreads, 0, stream()>>>(
        static_cast<uint64_t>(total), DivU64(out_pixels(s)), DivU64(samples), static_cast<uint64_t>(s.k), dy, dyT);
  }
  check_launch("launch of permute_dy_kernel", sizes);
}

template <class Sizes>
void add_bias(const ConvShape& s, const float* bias, float* y, const Sizes& sizes) {
  const int64_t total = s.n * s.k * out_pixels(s);
  if (total <= 0) return;
  const unsigned grid = grid_for(total, kThreads);
  if (fits_u32(total)) {
    add_bias_kernel<uint32_t><<<grid, kThreads, 0, stream()>>>(static_cast<uint32_t>(total), DivU32(out_pixels(s)),
                                                               DivU32(s.k), bias, y);
  } else {
    add_bias_kernel<uint64_t><<<grid, kThreads, 0, stream()>>>(static_cast<uint64_t>(total), DivU64(out_pixels(s)),
                                                               DivU64(s.k), bias, y);
  }
  check_launch("launch of add_bias_kernel", sizes);
}

auto conv_sizes(const char* op, const ConvShape& s) {
  return [op, &s] {
    return describe(op, " x=(", s.n, ",", s.c, ",", s.h, ",", s.w, ") w=(", s.k, ",", s.c / s.groups, ",", s.kh, ",",
                    s.kw, ") stride=(", s.sh, ",", s.sw, ") pad=(", s.ph, ",", s.pw, ") out=(", s.oh, ",", s.ow,
                    ") groups=", s.groups);
  };
}

// g for group 0 of `groups`, and again with a, b and c moved on by (da, db, dc) floats for each
// further group. gemm_batched has one batch dimension and g's runs over samples: the loop goes
// over whichever of groups and samples is shorter, batching the other.
void gemm_groups(const GemmBatch& g, int64_t groups, int64_t da, int64_t db, int64_t dc) {
  if (groups == 1) return gemm_batched(g);
  const bool loop_groups = groups <= g.batch;
  GemmBatch each = g;
  if (!loop_groups) {
    each.batch = groups;
    each.stride_a = da;
    each.stride_b = db;
    each.stride_c = dc;
  }
  const int64_t steps = loop_groups ? groups : g.batch;
  for (int64_t i = 0; i < steps; ++i) {
    each.a = g.a + i * (loop_groups ? da : g.stride_a);
    each.b = g.b + i * (loop_groups ? db : g.stride_b);
    each.c = g.c + i * (loop_groups ? dc : g.stride_c);
    gemm_batched(each);
  }
}

}  // namespace
}  // namespace detail

void conv2d_forward(const ConvShape& s, const float* x, const float* w, const float* bias, float* y) {
  using namespace detail;
  const auto sizes = conv_sizes("conv2d_forward", s);
  const int64_t rows = patch_rows(s), grows = group_rows(s), kg = group_filters(s), pixels = out_pixels(s);
  if (s.n <= 0 || s.k <= 0 || pixels <= 0) return;

  const bool pointwise = is_pointwise(s);
  const int64_t chunk = pointwise ? s.n : chunk_samples(rows * pixels, s.n);
  Scratch col(pointwise ? 0 : static_cast<size_t>(chunk * rows * pixels) * sizeof(float));
  for (int64_t b0 = 0; b0 < s.n; b0 += chunk) {
    const int64_t samples = std::min(chunk, s.n - b0);
    const float* xb = x + b0 * s.c * s.h * s.w;
    if (!pointwise) im2col(s, samples, true, xb, col.as<float>(), sizes);
    GemmBatch g;
    g.m = kg;
    g.n = pixels;
    g.k = grows;
    g.a = w;
    g.lda = grows;
    g.stride_a = 0;  // the same filters for every sample
    g.b = pointwise ? xb : col.as<float>();
    g.ldb = pixels;
    g.stride_b = rows * pixels;
    g.c = y + b0 * s.k * pixels;
    g.ldc = pixels;
    g.stride_c = s.k * pixels;
    g.batch = samples;
    gemm_groups(g, s.groups, kg * grows, grows * pixels, kg * pixels);  // rows == 0 (no input channels) writes zeros
  }
  if (bias) add_bias(s, bias, y, sizes);
}

void conv2d_backward_data(const ConvShape& s, const float* dy, const float* w, float* dx) {
  using namespace detail;
  const auto sizes = conv_sizes("conv2d_backward_data", s);
  const int64_t rows = patch_rows(s), grows = group_rows(s), kg = group_filters(s), pixels = out_pixels(s);
  if (s.n <= 0 || s.c <= 0 || s.h <= 0 || s.w <= 0) return;

  const bool pointwise = is_pointwise(s);
  const int64_t chunk = pointwise ? s.n : chunk_samples(rows * pixels, s.n);
  Scratch dcol(pointwise ? 0 : static_cast<size_t>(chunk * rows * pixels) * sizeof(float));
  for (int64_t b0 = 0; b0 < s.n; b0 += chunk) {
    const int64_t samples = std::min(chunk, s.n - b0);
    float* dxb = dx + b0 * s.c * s.h * s.w;
    GemmBatch g;
    g.trans_a = true;  // W is stored (k, ckk): W^T without moving it
    g.m = grows;
    g.n = pixels;
    g.k = kg;
    g.a = w;
    g.lda = grows;
    g.stride_a = 0;
    g.b = dy + b0 * s.k * pixels;
    g.ldb = pixels;
    g.stride_b = s.k * pixels;
    g.c = pointwise ? dxb : dcol.as<float>();
    g.ldc = pixels;
    g.stride_c = rows * pixels;
    g.batch = samples;
    gemm_groups(g, s.groups, kg * grows, kg * pixels, grows * pixels);
    if (!pointwise) col2im(s, samples, dcol.as<float>(), dxb, sizes);
  }
}

void conv2d_backward_weight(const ConvShape& s, const float* x, const float* dy, float* dw) {
  using namespace detail;
  const auto sizes = conv_sizes("conv2d_backward_weight", s);
  const int64_t rows = patch_rows(s), grows = group_rows(s), kg = group_filters(s), pixels = out_pixels(s);
  if (s.k <= 0 || rows <= 0) return;
  if (s.n <= 0 || pixels <= 0) {
    fill(s.k * grows, 0.0f, dw);
    return;
  }

  const int64_t chunk = chunk_samples((s.k + rows) * pixels, s.n);
  Scratch dyT(static_cast<size_t>(chunk * s.k * pixels) * sizeof(float));
  Scratch colT(static_cast<size_t>(chunk * rows * pixels) * sizeof(float));
  for (int64_t b0 = 0; b0 < s.n; b0 += chunk) {
    const int64_t samples = std::min(chunk, s.n - b0);
    permute_dy(s, samples, dy + b0 * s.k * pixels, dyT.as<float>(), sizes);
    im2col(s, samples, false, x + b0 * s.c * s.h * s.w, colT.as<float>(), sizes);
    GemmBatch g;
    g.trans_b = true;  // colT is stored (ckk, samples * pixels)
    g.m = kg;
    g.n = grows;
    g.k = samples * pixels;
    g.a = dyT.as<float>();
    g.lda = samples * pixels;
    g.b = colT.as<float>();
    g.ldb = samples * pixels;
    g.c = dw;
    g.ldc = grows;
    g.beta = b0 == 0 ? 0.0f : 1.0f;  // chunks add up in chunk order
    const int64_t span = samples * pixels;
    gemm_groups(g, s.groups, kg * span, grows * span, kg * grows);
  }
}

void conv2d_backward_bias(const ConvShape& s, const float* dy, float* db) {
  using namespace detail;
  const int64_t pixels = out_pixels(s);
  if (s.k <= 0) return;
  if (s.n <= 0 || pixels <= 0) {
    fill(s.k, 0.0f, db);
    return;
  }
  // Per (sample, channel) sums over pixels, then per channel over samples: two deterministic
  // reductions instead of one over a strided pattern.
  Scratch per_sample(static_cast<size_t>(s.n * s.k) * sizeof(float));
  reduce_sum(s.n * s.k, pixels, 1, 1.0f, dy, per_sample.as<float>());
  reduce_sum(1, s.n, s.k, 1.0f, per_sample.as<float>(), db);
}

}  // namespace kg::cuda
