// reduce_sum: y[o, i] = scale * sum over r of x[o, r, i], for x viewed as (outer, r, inner).
//
// Deterministic: every output is a fixed tree of fixed sequential sums, decided by the shape (and
// the GPU's multiprocessor count) alone; no atomics. Accurate: no thread adds more than about a
// thousand values in sequence (four interleaved accumulators of at most 256 each), the rest of
// the sum is a tree. When one pass cannot give every output both enough parallelism and short
// sequences (a full sum of 10^8 values, or a few column sums over a million rows), the r axis is
// split into chunks: the first pass writes one partial sum per chunk to scratch memory and a
// second reduce_sum over (outer, chunks, inner) adds them, in chunk order.
//
// Two layouts:
//  - inner == 1 (row sums): a warp per (row, chunk), reading float4s along the row;
//  - inner > 1 (column sums): a block of BX x BY threads per (outer, BX columns, chunk), with BX
//    lanes along the contiguous columns (coalesced) and BY rows in flight; the BY partial sums
//    are added in a shared-memory tree. BX adapts to narrow inputs (inner = 3 uses BX = 4,
//    BY = 64), so a warp still reads contiguous memory.
#include "common.cuh"

namespace kg::cuda {
namespace detail {
namespace {

constexpr int kThreads = 256;
constexpr int kWarpsPerBlock = kThreads / kWarp;
// Longest sequence one accumulator sees (per thread: four accumulators).
constexpr int64_t kMaxSerial = 256;

// Rows shorter than this get a thread each: a warp per row would leave most lanes idle.
constexpr int64_t kShortRow = 16;

__global__ void __launch_bounds__(kThreads)
    short_rows_kernel(int64_t outer, int64_t r, float scale, const float* __restrict__ x, float* __restrict__ y) {
  for (int64_t o = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; o < outer;
       o += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const float* row = x + o * r;
    float sum = 0.0f;
    for (int64_t j = 0; j < r; ++j) sum += row[j];
    y[o] = scale * sum;
  }
}

// A warp per item = (row o, chunk s) of `chunk` values. out[o * splits + s] = scale * sum.
// vec: rows and chunks start on 16-byte boundaries (r % 4 == 0, chunk % 4 == 0, x aligned).
__global__ void __launch_bounds__(kThreads)
    rows_kernel(int64_t outer, int64_t r, int64_t chunk, int64_t splits, bool vec, float scale,
                const float* __restrict__ x, float* __restrict__ out) {
  const int lane = threadIdx.x % kWarp;
  const int64_t items = outer * splits;
  const int64_t warps = static_cast<int64_t>(gridDim.x) * kWarpsPerBlock;
  for (int64_t item = static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + threadIdx.x / kWarp; item < items;
       item += warps) {
    const int64_t o = item / splits, s = item - o * splits;
    const int64_t begin = s * chunk, end = min(r, begin + chunk);
    const float* row = x + o * r;
    float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    if (vec) {
      for (int64_t j = begin + lane * 4; j < end; j += kWarp * 4) {  // end - j is a multiple of 4
        const float4 v = ld4(row + j);
        acc[0] += v.x;
        acc[1] += v.y;
        acc[2] += v.z;
        acc[3] += v.w;
      }
    } else {
      for (int64_t j = begin + lane; j < end; j += kWarp * 4) {
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          if (j + e * kWarp < end) acc[e] += row[j + e * kWarp];
        }
      }
    }
    const float sum = warp_sum((acc[0] + acc[1]) + (acc[2] + acc[3]));
    if (lane == 0) out[item] = scale * sum;
  }
}

// A block per item = (outer o, column group g, chunk s). Thread (tx, ty) adds rows ty, ty + BY,
// ... of the chunk for column g * BX + tx. out[(o * splits + s) * inner + i] = scale * sum.
__global__ void __launch_bounds__(kThreads)
    cols_kernel(int64_t outer, int64_t r, int64_t inner, int64_t chunk, int64_t splits, int bx_log2, float scale,
                const float* __restrict__ x, float* __restrict__ out) {
  __shared__ float partial[kThreads];
  const int bx = 1 << bx_log2, by = kThreads >> bx_log2;
  const int tx = threadIdx.x & (bx - 1), ty = threadIdx.x >> bx_log2;
  const int64_t groups = ceil_div<int64_t>(inner, bx);
  const int64_t items = outer * groups * splits;
  for (int64_t item = blockIdx.x; item < items; item += gridDim.x) {
    const int64_t o = item / (groups * splits), rest = item - o * groups * splits;
    const int64_t g = rest / splits, s = rest - g * splits;
    const int64_t col = g * bx + tx;
    const int64_t begin = s * chunk, end = min(r, begin + chunk);
    float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    if (col < inner) {
      const float* base = x + o * r * inner + col;
      for (int64_t row = begin + ty; row < end; row += 4 * by) {
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int64_t rr = row + e * by;
          if (rr < end) acc[e] += base[rr * inner];
        }
      }
    }
    partial[threadIdx.x] = (acc[0] + acc[1]) + (acc[2] + acc[3]);
    __syncthreads();
    for (int half = by / 2; half > 0; half /= 2) {  // fixed tree over ty
      if (ty < half) partial[threadIdx.x] += partial[threadIdx.x + half * bx];
      __syncthreads();
    }
    if (ty == 0 && col < inner) out[(o * splits + s) * inner + col] = scale * partial[tx];
    __syncthreads();  // partial[] is rewritten by the next item
  }
}

template <class Sizes>
void reduce_rows(int64_t outer, int64_t r, float scale, const float* x, float* y, const Sizes& sizes) {
  if (r < kShortRow) {
    short_rows_kernel<<<grid_for(outer, kThreads), kThreads, 0, stream()>>>(outer, r, scale, x, y);
    check_launch("launch of short_rows_kernel", sizes);
    return;
  }
  // Chunks per row: enough that each lane's accumulators stay short, and, for few long rows,
  // enough warps to fill the GPU, as long as each warp still gets at least 1024 values.
  const int64_t lane_span = kWarp * 4 * kMaxSerial;  // values one warp may add in sequence
  const int64_t min_splits = ceil_div<int64_t>(r, lane_span);
  const int64_t want_warps = static_cast<int64_t>(sm_count()) * 64;
  const int64_t par_splits = std::min(ceil_div<int64_t>(want_warps, outer), std::max<int64_t>(1, r / 1024));
  int64_t splits = std::max(min_splits, par_splits);
  const int64_t chunk = ceil_div<int64_t>(ceil_div<int64_t>(r, splits), 4) * 4;
  splits = ceil_div<int64_t>(r, chunk);
  const bool vec = aligned16(x) && r % 4 == 0;

  Scratch partial(splits > 1 ? static_cast<size_t>(outer * splits) * sizeof(float) : 0);
  float* out = splits > 1 ? partial.as<float>() : y;
  const float first_scale = splits > 1 ? 1.0f : scale;
  const unsigned grid = grid_exact(ceil_div<int64_t>(outer * splits, kWarpsPerBlock));
  rows_kernel<<<grid, kThreads, 0, stream()>>>(outer, r, chunk, splits, vec, first_scale, x, out);
  check_launch("launch of rows_kernel", sizes);
  if (splits > 1) reduce_sum(outer, splits, 1, scale, out, y);  // splits < r: this terminates
}

template <class Sizes>
void reduce_cols(int64_t outer, int64_t r, int64_t inner, float scale, const float* x, float* y,
                 const Sizes& sizes) {
  int bx_log2 = 0;
  while (bx_log2 < 5 && (int64_t{1} << bx_log2) < inner) ++bx_log2;
  const int64_t bx = int64_t{1} << bx_log2, by = kThreads / bx;
  const int64_t groups = ceil_div<int64_t>(inner, bx);
  // Chunks of r: each thread adds at most 4 * kMaxSerial rows, and when outer * groups blocks
  // cannot fill the GPU, more chunks as long as each thread keeps at least 8 rows.
  const int64_t min_splits = ceil_div<int64_t>(r, by * 4 * kMaxSerial);
  const int64_t want_blocks = static_cast<int64_t>(sm_count()) * 16;
  const int64_t par_splits =
      std::min(ceil_div<int64_t>(want_blocks, outer * groups), std::max<int64_t>(1, r / (by * 8)));
  int64_t splits = std::max(min_splits, par_splits);
  const int64_t chunk = ceil_div<int64_t>(r, splits);
  splits = ceil_div<int64_t>(r, chunk);

  Scratch partial(splits > 1 ? static_cast<size_t>(outer * splits * inner) * sizeof(float) : 0);
  float* out = splits > 1 ? partial.as<float>() : y;
  const float first_scale = splits > 1 ? 1.0f : scale;
  cols_kernel<<<grid_exact(outer * groups * splits), kThreads, 0, stream()>>>(outer, r, inner, chunk, splits, bx_log2,
                                                                               first_scale, x, out);
  check_launch("launch of cols_kernel", sizes);
  if (splits > 1) reduce_sum(outer, splits, inner, scale, out, y);  // splits < r: this terminates
}

}  // namespace
}  // namespace detail

void reduce_sum(int64_t outer, int64_t r, int64_t inner, float scale, const float* x, float* y) {
  using namespace detail;
  if (outer <= 0 || inner <= 0) return;
  auto sizes = [&] { return describe("reduce_sum outer=", outer, " r=", r, " inner=", inner); };
  if (r <= 0) {
    fill(outer * inner, 0.0f, y);
    return;
  }
  if (inner == 1) reduce_rows(outer, r, scale, x, y, sizes);
  else reduce_cols(outer, r, inner, scale, x, y, sizes);
}

}  // namespace kg::cuda
