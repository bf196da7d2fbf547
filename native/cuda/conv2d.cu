// 2-D convolution as GEMMs over the patch matrices of im2col.
//
// For one sample, the input patches form a matrix col (c*kh*kw rows, oh*ow columns): row
// (c, p, q), column (i, j) holds x[c, i*sh + p - ph, j*sw + q - pw] (0 in the padding). Then
//   forward:          y[b]   = W (k x ckk) * col[b] + bias   (one GEMM batched over samples)
//   backward data:    dcol[b] = W^T * dy[b], then dx = col2im(dcol) (a gather, see below)
//   backward weight:  dW = sum_b dy[b] * col[b]^T            (one GEMM summing over samples)
//   backward bias:    db[k] = sum of dy[b][k][pixel] over samples and pixels: the row sums of
//                     backward weight's A operand, taken inside its GEMM (GemmBatch::row_sums)
//
// Forward and backward weight never materialize col: the GEMM's B operand is gathered straight
// from x (GemmBatch::patches, PatchLoader in gemm.cu), each slice of col computed as the GEMM
// loads it. That saves an im2col launch and a col buffer of kh*kw times x's size per call, and
// with no buffer there is no need to work through large batches in chunks. The gather loads
// exactly what im2col would have stored, so the results are those of the GEMM over a col buffer,
// bit for bit. Its indices are 32-bit per image: an image of 2^31 floats or more (8 GiB, one
// sample) is refused rather than given an explicit path of its own (patch_geometry).
//
// The forward bias is added by the GEMM as it writes y (GemmBatch::bias, one per row of y[b]),
// not by a pass of its own.
//
// Backward weight must be deterministic, so there are no atomics: the sum over samples and pixels
// is the k loop of one GEMM. Its A operand is dy[b] read in place (k x pixels), its B operand
// col[b] gathered transposed; the GEMM sums the samples as terms of one product
// (GemmBatch::terms), walking them in sample order inside its k loop, and splits the work over
// several blocks when the output is small (partial tiles added in a fixed order).
//
// Backward bias comes with backward weight when both are wanted (the GEMM's row sums); alone
// (a frozen weight), it is one kernel: a block per output channel sums that channel's planes in
// a fixed order (see bias_grad_kernel).
//
// Backward data does write dcol, in chunks of samples so that scratch memory stays bounded
// (kScratchFloats) whatever the batch size. col2im is a gather for the same reason as above:
// each input pixel adds up the entries of dcol that came from it, in a fixed (p, q) order.
//
// A 1x1 convolution with stride 1 and no padding reads x itself as col, densely (float4 loads).
//
// Grouped convolution: group g's patch rows, filters and output channels are contiguous slices of
// col, W and y (g * ckk/groups rows on, and so on), and its patch rows are those of its input
// channels alone: the patch matrix of x's channels g * c/groups on. So each GEMM above becomes
// one per group over those slices: batched over the groups, or, where the GEMM is already
// batched over samples, one per group or per sample (gemm_groups).
#include "common.cuh"

namespace kg::cuda {
namespace detail {
namespace {

constexpr int kThreads = 256;
constexpr int64_t kScratchFloats = int64_t{1} << 25;  // 128 MiB of dcol buffers per call at most

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

// Values of one channel's planes (samples * pixels) up to which a single block sums them: each
// of its threads then adds at most 1024 values, in four accumulators of at most 256 (the bound
// reduce.cu keeps too), and streams at most 1 MiB per block. Beyond it, one block per channel
// would leave the GPU mostly idle while it streams the whole plane stack, so backward bias
// falls back to two reductions that spread each channel over many blocks.
constexpr int64_t kBiasGradSingleBlock = int64_t{1} << 18;

// db[kc] = sum over samples b and pixels of dy[b][kc][pixel], for the channels' planes
// dy[b][kc] (`pixels` contiguous values each, `channels * pixels` apart). A block per channel:
// its threads walk the channel's (sample, unit) pairs kThreads units apart, a unit being VW
// consecutive pixels (float4s when every plane starts 16-byte aligned), in four accumulators
// taken in turn; then the block's fixed reduction tree. The order depends on the shape alone.
template <int VW>
__global__ void __launch_bounds__(kThreads)
    bias_grad_kernel(int64_t channels, int64_t samples, int64_t pixels, const float* __restrict__ dy,
                     float* __restrict__ db) {
  __shared__ float warp_sums[kThreads / kWarp];
  const int64_t units = pixels / VW;  // per plane
  // A thread's position moves kThreads units per step: step_b planes and step_u units on.
  const int64_t step_b = kThreads / units, step_u = kThreads - step_b * units;
  const int64_t b0 = threadIdx.x / units, u0 = threadIdx.x - b0 * units;
  for (int64_t kc = blockIdx.x; kc < channels; kc += gridDim.x) {
    float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    int64_t b = b0, u = u0;
    while (b < samples) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        if (b < samples) {
          const Pack<VW> v = load_pack<VW>(dy + (b * channels + kc) * pixels + u * VW);
          if constexpr (VW == 4) {
            acc[e] += (v.v[0] + v.v[1]) + (v.v[2] + v.v[3]);
          } else {
            acc[e] += v.v[0];
          }
          b += step_b;
          u += step_u;
          if (u >= units) {
            u -= units;
            ++b;
          }
        }
      }
    }
    const float sum = block_sum<kThreads>((acc[0] + acc[1]) + (acc[2] + acc[3]), warp_sums);
    if (threadIdx.x == 0) db[kc] = sum;
  }
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

auto conv_sizes(const char* op, const ConvShape& s) {
  return [op, &s] {
    return describe(op, " x=(", s.n, ",", s.c, ",", s.h, ",", s.w, ") w=(", s.k, ",", s.c / s.groups, ",", s.kh, ",",
                    s.kw, ") stride=(", s.sh, ",", s.sw, ") pad=(", s.ph, ",", s.pw, ") out=(", s.oh, ",", s.ow,
                    ") groups=", s.groups);
  };
}

// The patch matrices of s's images, for the GEMM to gather (GemmBatch::patches). Every index
// inside one image must fit the gather's 32-bit arithmetic (and DivU32): the image's floats, the
// patch rows, the output pixels, and the padded extents its window corners move over.
template <class Sizes>
PatchGeometry patch_geometry(const ConvShape& s, const Sizes& sizes) {
  const int64_t largest =
      std::max({s.c * s.h * s.w, patch_rows(s), out_pixels(s), s.h + 2 * s.ph, s.w + 2 * s.pw});
  if (!fits_u32(largest)) {
    throw CudaError("conv2d: an image too large for 32-bit patch indices [" + sizes() + "]");
  }
  PatchGeometry g;
  g.kw = DivU32(static_cast<uint64_t>(s.kw));
  g.kh = DivU32(static_cast<uint64_t>(s.kh));
  g.ow = DivU32(static_cast<uint64_t>(s.ow));
  g.h = static_cast<int32_t>(s.h);
  g.w = static_cast<int32_t>(s.w);
  g.plane = static_cast<int32_t>(s.h * s.w);
  g.sh = static_cast<int32_t>(s.sh);
  g.sw = static_cast<int32_t>(s.sw);
  g.ph = static_cast<int32_t>(s.ph);
  g.pw = static_cast<int32_t>(s.pw);
  return g;
}

// g for group 0 of `groups`, and again with a, b, c and the bias moved on by (da, db, dc, dbias)
// floats for each further group. gemm_batched has one batch dimension and g's runs over samples:
// the loop goes over whichever of groups and samples is shorter, batching the other.
void gemm_groups(const GemmBatch& g, int64_t groups, int64_t da, int64_t db, int64_t dc, int64_t dbias = 0) {
  if (groups == 1) return gemm_batched(g);
  const bool loop_groups = groups <= g.batch;
  GemmBatch each = g;
  if (!loop_groups) {
    each.batch = groups;
    each.stride_a = da;
    each.stride_b = db;
    each.stride_c = dc;
    each.stride_bias = dbias;
  }
  const int64_t steps = loop_groups ? groups : g.batch;
  for (int64_t i = 0; i < steps; ++i) {
    each.a = g.a + i * (loop_groups ? da : g.stride_a);
    each.b = g.b + i * (loop_groups ? db : g.stride_b);
    each.c = g.c + i * (loop_groups ? dc : g.stride_c);
    if (g.bias) each.bias = g.bias + i * (loop_groups ? dbias : g.stride_bias);
    gemm_batched(each);
  }
}

}  // namespace
}  // namespace detail

void conv2d_forward(const ConvShape& s, const float* x, const float* w, const float* bias, float* y) {
  using namespace detail;
  const auto sizes = conv_sizes("conv2d_forward", s);
  const int64_t grows = group_rows(s), kg = group_filters(s), pixels = out_pixels(s);
  if (s.n <= 0 || s.k <= 0 || pixels <= 0) return;

  const bool pointwise = is_pointwise(s);
  PatchGeometry patches;
  if (!pointwise) patches = patch_geometry(s, sizes);
  const int64_t image = s.c * s.h * s.w, group_image = image / s.groups;
  GemmBatch g;
  g.m = kg;
  g.n = pixels;
  g.k = grows;
  g.a = w;
  g.lda = grows;
  g.stride_a = 0;  // the same filters for every sample
  g.b = x;         // col[b]: gathered from x[b], or x[b] itself (pointwise, ld = pixels)
  g.ldb = pixels;
  g.stride_b = image;
  g.patches = pointwise ? nullptr : &patches;
  g.c = y;
  g.ldc = pixels;
  g.stride_c = s.k * pixels;
  g.batch = s.n;
  g.bias = bias;  // one per output channel: per row of y[b]
  g.bias_per_row = true;
  // rows == 0 (no input channels) writes the bias alone.
  gemm_groups(g, s.groups, kg * grows, group_image, kg * pixels, kg);
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

void conv2d_backward_weight(const ConvShape& s, const float* x, const float* dy, float* dw, float* db) {
  using namespace detail;
  const auto sizes = conv_sizes("conv2d_backward_weight", s);
  const int64_t rows = patch_rows(s), grows = group_rows(s), kg = group_filters(s), pixels = out_pixels(s);
  if (s.k <= 0) return;
  if (rows <= 0) {  // no weights, and no GEMM to take the bias gradient from
    if (db) conv2d_backward_bias(s, dy, db);
    return;
  }
  if (s.n <= 0 || pixels <= 0) {
    fill(s.k * grows, 0.0f, dw);
    if (db) fill(s.k, 0.0f, db);
    return;
  }

  const bool pointwise = is_pointwise(s);
  PatchGeometry patches;
  if (!pointwise) patches = patch_geometry(s, sizes);
  const int64_t image = s.c * s.h * s.w;
  // Group g: dW_g (kg x grows) = sum over samples b of dy_g[b] * col_g[b]^T, with the samples as
  // the GEMM's terms and the groups as its batch.
  GemmBatch g;
  g.trans_b = true;  // col[b] is (ckk, pixels)
  g.m = kg;
  g.n = grows;
  g.k = pixels;
  g.a = dy;
  g.lda = pixels;
  g.stride_a = kg * pixels;
  g.b = x;  // col[b]: gathered from x[b], or x[b] itself (pointwise, ld = pixels)
  g.ldb = pixels;
  g.stride_b = image / s.groups;
  g.patches = pointwise ? nullptr : &patches;
  g.c = dw;
  g.ldc = grows;
  g.stride_c = kg * grows;
  g.batch = s.groups;
  g.terms = s.n;
  g.term_stride_a = s.k * pixels;
  g.term_stride_b = image;
  g.row_sums = db;  // db_g = the row sums of dy_g[b] over pixels and samples
  g.stride_row_sums = kg;
  gemm_batched(g);
}

void conv2d_backward_bias(const ConvShape& s, const float* dy, float* db) {
  using namespace detail;
  const int64_t pixels = out_pixels(s);
  if (s.k <= 0) return;
  if (s.n <= 0 || pixels <= 0) {
    fill(s.k, 0.0f, db);
    return;
  }
  if (s.n * pixels > kBiasGradSingleBlock) {
    // Too much per channel for one block (see kBiasGradSingleBlock): per (sample, channel) sums
    // over pixels, then per channel over samples, each reduction spread over the whole GPU.
    Scratch per_sample(static_cast<size_t>(s.n * s.k) * sizeof(float));
    reduce_sum(s.n * s.k, pixels, 1, 1.0f, dy, per_sample.as<float>());
    reduce_sum(1, s.n, s.k, 1.0f, per_sample.as<float>(), db);
    return;
  }
  const auto sizes = conv_sizes("conv2d_backward_bias", s);
  if (pixels % 4 == 0 && aligned16(dy)) {
    bias_grad_kernel<4><<<grid_exact(s.k), kThreads, 0, stream()>>>(s.k, s.n, pixels, dy, db);
  } else {
    bias_grad_kernel<1><<<grid_exact(s.k), kThreads, 0, stream()>>>(s.k, s.n, pixels, dy, db);
  }
  check_launch("launch of bias_grad_kernel", sizes);
}

}  // namespace kg::cuda
