// Single-precision GEMM: C = alpha * op(A) * op(B) + beta * C (+ a bias), every transpose
// combination, any sizes, optionally batched with strides and summed over several products
// (GemmBatch in common.cuh; the convolutions and the dense layer use those).
//
// The classic register-tiled design:
//  - a block computes a BM x BN tile of C, looping over k in slices of BK;
//  - each slice of A and B is read from global memory once per block (float4 loads when the
//    layout allows), and stored in shared memory "k-major", smem[kk][row], whatever the
//    transposes: then the inner loop reads, for each kk, a column of A and a row of B as float4s;
//  - each thread accumulates a TM x TN tile of C in registers: per kk it loads TM + TN floats
//    from shared memory for TM * TN FMAs, which is what makes the kernel compute-bound;
//  - shared memory is double-buffered and the next slice is prefetched into registers while the
//    current one is multiplied, so there is one barrier per slice and global loads overlap math.
//
// Warp tiling: each warp owns a contiguous WM x WN warp tile of the block's tile (32 x 64 or
// 16 x 32), its 32 lanes arranged 4 x 8 over it. A thread's TM x TN tile is not contiguous: it
// is (TM/4) x (TN/4) sub-tiles of 4 x 4, 16 rows and 32 columns apart inside the warp tile. Per
// kk a warp then reads 4 float4s of A's column (each broadcast to 8 lanes) and 8 consecutive
// float4s of B's row (128 bytes: every bank once): no bank conflicts, and only WM + WN floats
// per warp instead of whole rows of the block's tile. Its float4 stores of C cover 128
// contiguous bytes of each of 4 rows: whole cache lines.
//
// Registers: the 128 x 128 tile's 64 accumulators, the fragments read from shared memory and the
// prefetched slice must fit in 128 registers (two blocks per multiprocessor: 2 * 256 * 128 is
// the 65536 registers of an SM), with no spills to local memory. Everything else that lives
// across the k loop is kept small: 32-bit counters, loader steps read from the kernel's
// parameters, patch geometry recomputed per slice, the tile's coordinates parked in shared
// memory for the epilogue.
//
// Three tile shapes: 128 x 128 (8 x 8 per thread) when there are enough tiles to fill the GPU,
// 64 x 64 (4 x 4 per thread) for small problems, and 32 x 128 (4 x 4 per thread) when m is 32 or
// less, where the taller tiles would spend most of their multiply-adds on rows past the edge of C
// (a convolution with 20 output channels; the rule and its arithmetic are at the tile choice in
// gemm_batched). All three are the same kernel with other constants: the loaders, the pipeline,
// terms, split-K, the gathered patches, row sums and the epilogue do not depend on the shape, so
// every element of C is the same chain of fmaf over k in the same order whatever the tile, and
// the results are bitwise the same. When even that leaves most of the GPU idle and
// k is long (a convolution's weight gradient reduces over batch * pixels), the k range is split
// over several blocks that write partial tiles to scratch memory; a second kernel adds them in
// split order. That keeps the result deterministic: no atomics, a fixed summation order.
//
// A sum of products (GemmBatch::terms, a convolution's weight gradient over its samples) is one
// long k loop: a block walks its terms one after another, each term's k range in slices as
// above, with the loaders jumping to the next term's operands between two slices (the prefetch
// pipeline does not stop). When the work is split, whole terms go to different blocks before any
// term's k range is cut, and the partial tiles are added in term order, then k order.
//
// B can also be gathered instead of read (GemmBatch::patches): a convolution's im2col matrix,
// computed from the image as each slice is loaded (PatchLoader), so that no col buffer is
// written and read back. The kernel takes its B loader as a template parameter; the gathering
// loader fills the same registers and shared-memory layout as the dense one, with scalar loads,
// and the rest of the kernel (tiles, pipeline, terms, split-K, epilogue) does not know the
// difference. The dense path compiles exactly as before.
//
// Row sums of op(A) (GemmBatch::row_sums, a bias gradient inside the weight gradient's GEMM) are
// taken from the A slices already in shared memory, by the blocks of the first column of tiles:
// one thread per row adds its row's k values slice after slice, so each sum runs in k order
// (terms in order), fixed by the shape. Split blocks write partial sums, which the split-K
// reduction adds in split order, as it does the partial tiles.
//
// The bias is added where C is written: in the tile epilogue, or in the split-K reduction when k
// is split (partial tiles hold raw sums), or with the beta term when k == 0. A bias never costs a
// pass over C of its own.
#include <type_traits>

#include "common.cuh"

namespace kg::cuda {
namespace detail {
namespace {

template <int BM_, int BN_, int BK_, int TM_, int TN_>
struct Tile {
  static constexpr int BM = BM_, BN = BN_, BK = BK_, TM = TM_, TN = TN_;
  // A warp is kLanesM x kLanesN threads (lanes along n vary fastest) and owns a WM x WN warp
  // tile of C; the warps tile the block's BM x BN.
  static constexpr int kLanesM = 4, kLanesN = 8;
  static constexpr int WM = TM * kLanesM, WN = TN * kLanesN;
  static constexpr int kWarpsM = BM / WM, kWarpsN = BN / WN;
  static constexpr int kThreads = 32 * kWarpsM * kWarpsN;
  // Shared rows padded by 4 floats: rows stay 16-byte aligned for float4 access, and consecutive
  // k rows start 4 banks apart, which the transposing stores rely on (SliceLoader::store).
  static constexpr int kPad = 4;
  static_assert(TM % 4 == 0 && TN % 4 == 0, "threads own whole 4 x 4 sub-tiles");
  static_assert(kLanesM * kLanesN == 32 && BM % WM == 0 && BN % WN == 0, "warps tile the block");
};
using LargeTile = Tile<128, 128, 8, 8, 8>;  // 8 warps of 32 x 64
using SmallTile = Tile<64, 64, 16, 4, 4>;   // 8 warps of 16 x 32
// Few rows: 2 x 4 warps of 16 x 32. Its A slice (32 x 16) is 128 float4 runs, one for each of the
// first 4 warps, the others load none (SliceLoader); its B slice (128 x 16) is 2 runs per thread.
// Both row lengths are multiples of 32, so the shared-memory layout and its conflict-free
// accesses are the other tiles' (see SliceLoader::store; the fragment reads are SmallTile's warp
// tile). BK = 16 as in SmallTile: 16 FMAs per thread per kk and 256 per barrier, and k = 9 (a
// 3 x 3 convolution of one channel) is padded to 16, no more than with BK = 8.
using ShortTile = Tile<32, 128, 16, 4, 4>;
static_assert(LargeTile::kThreads == 256 && SmallTile::kThreads == 256 && ShortTile::kThreads == 256,
              "256 threads per block");

struct Params {
  int64_t m, n, k;
  const float* a;
  int64_t lda, stride_a;
  const float* b;
  int64_t ldb, stride_b;
  float* c;
  int64_t ldc, stride_c;
  float alpha, beta;
  int64_t batch, tiles_m, tiles_n;
  int64_t terms, term_stride_a, term_stride_b;
  // In bytes, what the loaders add to their pointers after each slice (BK * ld floats along k
  // for an operand stored k-major, BK otherwise), and between terms: from the end of one term's
  // k range to the start of the next's. Precomputed, and in bytes, so that the k loop adds them
  // straight from the kernel's parameters: a stride computed in the kernel would hold two
  // registers for the whole loop. Blocks only walk several terms when their k range is all of k.
  int64_t step_a, step_b, jump_a, jump_b;
  // Split z = blockIdx.y covers terms [t0, t0 + terms_per_split) with t0 = (z / k_splits) *
  // terms_per_split, and of each the k range of length k_per_split (a multiple of BK) starting
  // at (z % k_splits) * k_per_split.
  int64_t k_per_split, k_splits, terms_per_split;
  // Split-K: raw sums of split z go to partial + (z * batch + b) * m * n (leading dimension n);
  // null when the work is not split.
  float* partial;
  const float* bias;  // null: none; see GemmBatch
  int64_t stride_bias;
  bool bias_per_row;
  bool vec_a, vec_b, vec_c;  // float4 access allowed (16-byte aligned, leading dims % 4 == 0)
  PatchGeometry patches;     // B gathered from images (see GemmBatch::patches); else unused
  // Row sums of op(A) (GemmBatch::row_sums), or null. When split, the splits' raw row sums go to
  // partial_rows + (z * batch + b) * m and the reduction adds them in split order.
  float* row_sums;
  int64_t stride_row_sums;
  float* partial_rows;
};

// p moved on by `bytes` bytes (Params::step_a and the like are in bytes).
__device__ __forceinline__ const float* advance(const float* p, int64_t bytes) {
  return reinterpret_cast<const float*>(reinterpret_cast<const char*>(p) + bytes);
}

// The bias of element (row, col) of batch entry b.
__device__ __forceinline__ float bias_at(const Params& p, int64_t b, int64_t row, int64_t col) {
  return __ldg(p.bias + b * p.stride_bias + (p.bias_per_row ? row : col));
}

// One BK-deep slice of an operand: loaded from global memory into registers, later stored into
// shared memory as smem[kk][r]. ROWS is the tile's extent along m (for A) or n (for B).
// kKMajor: element (kk, r) is at src[kk * ld + r] (contiguous along r: A transposed, B not);
// otherwise at src[r * ld + kk] (contiguous along k), and the store transposes it.
// Each thread owns kLoads runs of 4 contiguous floats per slice; it keeps a pointer to each and
// how many of the run's 4 r's exist, so the loop does no 64-bit index arithmetic.
// A slice with fewer runs than threads (ShortTile's A: 128 runs, 256 threads) is loaded by the
// first kRuns threads, one run each; the others (whole warps) hold no valid run and store nothing.
template <int ROWS, int BK, int THREADS, bool kKMajor>
struct SliceLoader {
  static constexpr int kRuns = ROWS * BK / 4;                             // float4 runs per slice
  static constexpr int kLoads = kRuns >= THREADS ? kRuns / THREADS : 1;  // runs per thread
  static_assert(kRuns % 32 == 0 && (kRuns < THREADS ? THREADS % kRuns == 0 : kRuns % THREADS == 0),
                "the slice splits evenly over whole warps");
  static_assert(THREADS % 32 == 0, "whole warps");
  // Whether this thread loads nothing (warp-uniform).
  static __device__ __forceinline__ bool idle() { return kRuns < THREADS && threadIdx.x >= kRuns; }
  // The transposing store's mapping (see store) needs pairs of k runs and 16-row groups, and
  // rows of ROWS + 4 floats that start 4 banks apart.
  static_assert(kKMajor || (BK % 8 == 0 && ROWS % 32 == 0), "the transposing store's bank mapping");
  const float* ptr[kLoads];
  int rows_valid[kLoads];  // kKMajor: 0..4 valid r's in the run; otherwise 0 or 1 (its row)
  float4 regs[kLoads];

  // Position of run l inside the slice: its first k (run_k) and its first r (run_r).
  // kKMajor: a run is 4 consecutive r's of one k row, and consecutive threads take consecutive
  // runs: a warp's float4 loads and stores cover whole stretches of rows, 512 contiguous bytes
  // (one k row, or two of 256 bytes when ROWS is 64, or four of 128 bytes when ROWS is 32).
  // Otherwise a run is 4 consecutive k's of one r, and a warp takes 16 r's times 2 adjacent runs
  // along k: lane bit 0 picks the run along k, lanes / 2 the r; warps go on along k, then r.
  static __device__ __forceinline__ int run_k(int l) {
    const int f = threadIdx.x + l * THREADS;
    if constexpr (kKMajor) {
      return f / (ROWS / 4);
    } else {
      return (2 * ((f / 32) % (BK / 8)) + f % 2) * 4;
    }
  }
  static __device__ __forceinline__ int run_r(int l) {
    const int f = threadIdx.x + l * THREADS;
    if constexpr (kKMajor) {
      return (f % (ROWS / 4)) * 4;
    } else {
      return (f / 32) / (BK / 8) * 16 + (f % 32) / 2;
    }
  }
  // How many of 4 consecutive positions exist when `left` positions remain.
  template <typename Int>
  static __device__ __forceinline__ int clamp4(Int left) {
    return left <= 0 ? 0 : (left >= 4 ? 4 : static_cast<int>(left));
  }

  // rows: the operand's extent along r; r0: the tile's first r; k0: the first k of the block.
  __device__ __forceinline__ void init(const float* src, int64_t ld, int64_t rows, int64_t r0, int64_t k0) {
#pragma unroll
    for (int l = 0; l < kLoads; ++l) {
      const int64_t gr = r0 + run_r(l), gk = k0 + run_k(l);
      ptr[l] = idle() ? src : (kKMajor ? src + gk * ld + gr : src + gr * ld + gk);
      const int64_t left = idle() ? 0 : rows - gr;  // an idle thread's run has no valid r
      rows_valid[l] = kKMajor ? clamp4(left) : (left > 0 ? 1 : 0);
    }
  }

  // Loads the next slice and advances. k_left = (end of the block's k range) - (slice's first k);
  // the host keeps a block's k range below 2^31. Missing elements load as 0: they only ever
  // meet other zeros (k) or feed outputs that are never stored (m, n).
  // step: the pointer advance per slice (Params::step_a / step_b).
  __device__ __forceinline__ void load(int64_t step, int k_left, bool vec) {
#pragma unroll
    for (int l = 0; l < kLoads; ++l) {
      const int kl = k_left - run_k(l);  // k's left from this run's first k
      int valid;                              // contiguous valid floats at ptr[l], 0..4
      if constexpr (kKMajor) {
        valid = kl > 0 ? rows_valid[l] : 0;
      } else {
        valid = rows_valid[l] ? clamp4(kl) : 0;
      }
      if (vec && valid == 4) {
        regs[l] = __ldg(reinterpret_cast<const float4*>(ptr[l]));
      } else {
        float v[4];
#pragma unroll
        for (int e = 0; e < 4; ++e) v[e] = e < valid ? __ldg(ptr[l] + e) : 0.0f;
        regs[l] = make_float4(v[0], v[1], v[2], v[3]);
      }
      ptr[l] = advance(ptr[l], step);
    }
  }

  // After the last slice of one term, moves to the first of the next (Params::jump_a / jump_b).
  __device__ __forceinline__ void next_term(int64_t jump) {
#pragma unroll
    for (int l = 0; l < kLoads; ++l) ptr[l] = advance(ptr[l], jump);
  }

  // Shared rows are ROWS + 4 floats long (ROWS a multiple of 32), so word (kk, r) is in bank
  // (4 * kk + r) % 32. The transposing store writes, for each e, element (4 * q + e, r) from
  // every lane, where q is the run's index along k: bank (16 * q + 4 * e + r) % 32. Inside a
  // warp, q = 2 * c + lane % 2 (c the same for the warp) and r = (a multiple of 16) + lane / 2,
  // so the bank is (constant + 16 * (lane % 2) + lane / 2) % 32: lane bit 0 picks a half of the
  // banks, lane / 2 one of its 16 banks, and the 32 lanes hit 32 different banks. (Lanes that
  // take 4 consecutive runs of one r, the natural order, would put runs q and q + 2 of the same
  // r's in the same bank: a 2-way conflict on every store.)
  // kKMajor stores are float4s of consecutive r's, consecutive across the warp: conflict-free.
  // (A warp's float4 stores go in 4 phases of 8 lanes, 128 bytes each: with ROWS = 32 a phase is
  // one whole k row, 32 different banks.)
  __device__ __forceinline__ void store(float (*smem)[ROWS + 4]) const {
    if (idle()) return;
#pragma unroll
    for (int l = 0; l < kLoads; ++l) {
      const int kk = run_k(l), rr = run_r(l);
      if constexpr (kKMajor) {
        *reinterpret_cast<float4*>(&smem[kk][rr]) = regs[l];
      } else {
        smem[kk + 0][rr] = regs[l].x;
        smem[kk + 1][rr] = regs[l].y;
        smem[kk + 2][rr] = regs[l].z;
        smem[kk + 3][rr] = regs[l].w;
      }
    }
  }
};

// B as the patch matrix of an image (GemmBatch::patches), gathered from the image as the slices
// are loaded instead of read from a col buffer that im2col wrote first. Which elements a thread
// loads and how they go into shared memory are the dense loader's (the runs, the store); only the
// loads differ: scalar, with the index arithmetic done per run, and zeros for the padding, the
// tile's edges and the end of k. Those are the values im2col would have written, so the GEMM
// multiplies the same numbers in the same order as over a col buffer: the same bits.
// kKMajor (B as stored, a forward convolution): k walks patch rows r, the ROWS side pixels p;
// otherwise (B transposed, a weight gradient): k walks pixels, the ROWS side patch rows.
// All indices inside one image are 32-bit (the host checks PatchGeometry's bounds).
template <int ROWS, int BK, int THREADS, bool kKMajor>
struct PatchLoader : SliceLoader<ROWS, BK, THREADS, kKMajor> {
  using Dense = SliceLoader<ROWS, BK, THREADS, kKMajor>;
  using Dense::kLoads;
  using Dense::regs;
  using Dense::run_k;
  using Dense::run_r;

  const PatchGeometry* geo;  // set by the kernel before init
  const float* image;        // the current term's image (and group's first channel)
  int k_next;                // the next slice's first k
  // Per run, its first ROWS-side position (kKMajor: a pixel p; otherwise a patch row r) and how
  // many of its positions exist (kKMajor: 0..4; otherwise 0 or 1). The window offsets are
  // derived from these at each load, a few multiply-highs: kept from one slice to the next they
  // would hold up to 8 more registers across the whole k loop, which the accumulators need.
  int first[kLoads], count[kLoads];

  __device__ __forceinline__ void init(const float* src, int64_t /*ld*/, int64_t rows, int64_t r0, int64_t k0) {
    image = src;
    k_next = static_cast<int>(k0);
#pragma unroll
    for (int l = 0; l < kLoads; ++l) {
      const int64_t pos = Dense::idle() ? rows : r0 + run_r(l);  // an idle thread: nothing to gather
      count[l] = kKMajor ? Dense::clamp4(rows - pos) : (pos < rows ? 1 : 0);
      first[l] = count[l] ? static_cast<int>(pos) : 0;
    }
  }

  // x[c, ih, iw] of the current image from channel offset `at`, or 0 outside the image.
  __device__ __forceinline__ float pixel(uint32_t at, int ih, int iw) const {
    const bool inside = static_cast<uint32_t>(ih) < static_cast<uint32_t>(geo->h) &&
                        static_cast<uint32_t>(iw) < static_cast<uint32_t>(geo->w);
    return inside ? __ldg(image + at + static_cast<uint32_t>(ih * geo->w + iw)) : 0.0f;
  }

  __device__ __forceinline__ void load(int64_t /*step*/, int k_left, bool /*vec*/) {
#pragma unroll
    for (int l = 0; l < kLoads; ++l) {
      const int kk = run_k(l);
      float v[4] = {0.0f, 0.0f, 0.0f, 0.0f};
      if (count[l] > 0 && kk < k_left) {
        // The patch row r = (c, dh, dw) and the first pixel p = (i, j) of the run: along k in
        // one case, along the run in the other.
        const uint32_t r = static_cast<uint32_t>(kKMajor ? k_next + kk : first[l]);
        const uint32_t p = static_cast<uint32_t>(kKMajor ? first[l] : k_next + kk);
        const uint32_t t = geo->kw.div(r), dw = geo->kw.mod(r, t);
        const uint32_t c = geo->kh.div(t), dh = geo->kh.mod(t, c);
        const uint32_t at = c * static_cast<uint32_t>(geo->plane);
        const int top = static_cast<int>(dh) - geo->ph, left = static_cast<int>(dw) - geo->pw;
        uint32_t i = geo->ow.div(p), j = geo->ow.mod(p, i);
        // kKMajor: one patch row, up to 4 pixels; otherwise one patch row, 4 consecutive pixels
        // (k's) of which those before the end of k. Pixels go row-major: (i, j + 1) or (i + 1, 0).
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          if (kKMajor ? e < count[l] : kk + e < k_left) {
            v[e] = pixel(at, static_cast<int>(i) * geo->sh + top, static_cast<int>(j) * geo->sw + left);
          }
          if (++j == geo->ow.divisor) {
            j = 0;
            ++i;
          }
        }
      }
      regs[l] = make_float4(v[0], v[1], v[2], v[3]);
    }
    k_next += BK;
  }

  // jump: the distance between two terms' images (Params::jump_b). Only blocks whose k range is
  // all of k walk several terms, so the next term starts at k = 0.
  __device__ __forceinline__ void next_term(int64_t jump) {
    image = advance(image, jump);
    k_next = 0;
  }
};

// Writes 4 consecutive outputs (fewer at the right edge): C = alpha * acc + beta * C + bias,
// where beta == 0 never reads C (it may hold NaNs from an uninitialized buffer). The bias is
// added last, as a separate addition after the GEMM would.
__device__ __forceinline__ void write_c(float* dst, const float* acc, int valid, bool vec, float alpha, float beta,
                                        bool add_bias, const float* bias) {
  float v[4] = {alpha * acc[0], alpha * acc[1], alpha * acc[2], alpha * acc[3]};
  if (vec && valid >= 4) {
    if (beta != 0.0f) {
      const float4 old = *reinterpret_cast<const float4*>(dst);
      v[0] += beta * old.x;
      v[1] += beta * old.y;
      v[2] += beta * old.z;
      v[3] += beta * old.w;
    }
    if (add_bias) {
#pragma unroll
      for (int e = 0; e < 4; ++e) v[e] += bias[e];
    }
    *reinterpret_cast<float4*>(dst) = make_float4(v[0], v[1], v[2], v[3]);
    return;
  }
#pragma unroll
  for (int e = 0; e < 4; ++e) {
    if (e < valid) {
      float out = beta != 0.0f ? v[e] + beta * dst[e] : v[e];
      if (add_bias) out += bias[e];
      dst[e] = out;
    }
  }
}

// kGatherB: B is gathered from images by a PatchLoader (GemmBatch::patches) instead of read by
// a SliceLoader.
template <class T, bool kTransA, bool kTransB, bool kGatherB>
__global__ void __launch_bounds__(T::kThreads, 2) sgemm_kernel(const Params p) {
  constexpr int BM = T::BM, BN = T::BN, BK = T::BK, TM = T::TM, TN = T::TN;
  constexpr int PAD = T::kPad;
  __shared__ __align__(16) float As[2][BK][BM + PAD];
  __shared__ __align__(16) float Bs[2][BK][BN + PAD];

  // This block's tile. Batch-major; inside a batch, tiles go in groups of kGroupM tile rows,
  // column by column, so the blocks resident together reuse the same A rows and B columns
  // from L2 instead of sweeping all of B for every row of tiles. In 32 bits: the host keeps the
  // number of tiles below 2^31, and a 64-bit division is a long subroutine.
  constexpr int kGroupM = 8;
  const int tiles_m = static_cast<int>(p.tiles_m), tiles_n = static_cast<int>(p.tiles_n);
  const int tiles = tiles_m * tiles_n;
  const int batch = static_cast<int>(blockIdx.x) / tiles;
  const int t = static_cast<int>(blockIdx.x) - batch * tiles;
  const int group_tiles = min(tiles_m, kGroupM) * tiles_n;  // kGroupM * tiles_n, or all of them
  const int group = t / group_tiles;
  const int first_m = group * kGroupM;
  const int group_rows = min(tiles_m - first_m, kGroupM);
  const int in_group = t - group * group_tiles;
  const int tile_m = first_m + in_group % group_rows, tile_n = in_group / group_rows;
  const int64_t m0 = static_cast<int64_t>(tile_m) * BM, n0 = static_cast<int64_t>(tile_n) * BN;

  const int split = blockIdx.y;  // below 65536
  const int k_splits = static_cast<int>(p.k_splits);
  const int term_group = split / k_splits;
  const int64_t kbeg = static_cast<int64_t>(split - term_group * k_splits) * p.k_per_split;
  const int64_t kend = min(p.k, kbeg + p.k_per_split);
  const int64_t first_term = term_group * p.terms_per_split;
  const int terms = static_cast<int>(min(p.terms - first_term, p.terms_per_split));
  const float* A = p.a + batch * p.stride_a + first_term * p.term_stride_a;
  const float* B = p.b + batch * p.stride_b + first_term * p.term_stride_b;

  // The tile's coordinates again, for the epilogue: block-uniform, and needed only after the k
  // loop. Thread 0 leaves them in shared memory (the barrier after the first slice's stores
  // publishes them) and the epilogue reads them back: kept in registers, they would stay live
  // across the whole loop and take registers that the accumulators and fragments need.
  __shared__ int place[4];
  if (threadIdx.x == 0) {
    place[0] = batch;
    place[1] = split;
    place[2] = tile_m;
    place[3] = tile_n;
  }

  SliceLoader<BM, BK, T::kThreads, kTransA> load_a;   // A transposed is stored k x m
  // B not transposed is stored k x n.
  using LoaderB = std::conditional_t<kGatherB, PatchLoader<BN, BK, T::kThreads, !kTransB>,
                                     SliceLoader<BN, BK, T::kThreads, !kTransB>>;
  LoaderB load_b;
  if constexpr (kGatherB) load_b.geo = &p.patches;
  // The thread's first row and column inside the tile: its warp's corner, then its lane's 4 x 4
  // sub-tile inside the warp tile. Its other sub-tiles are kRowStep rows and kColStep columns
  // on (see the warp tiling at the top of the file for why).
  constexpr int kRowStep = 4 * T::kLanesM, kColStep = 4 * T::kLanesN;
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const int row0 = (warp % T::kWarpsM) * T::WM + (lane / T::kLanesN) * 4;
  const int col0 = (warp / T::kWarpsM) * T::WN + (lane % T::kLanesN) * 4;

  float acc[TM][TN];
#pragma unroll
  for (int i = 0; i < TM; ++i) {
#pragma unroll
    for (int j = 0; j < TN; ++j) acc[i][j] = 0.0f;
  }

  // The host keeps terms * (kend - kbeg) below 2^31.
  int k_left = static_cast<int>(kend - kbeg);
  const int slices = ceil_div(k_left, BK) * terms;
  load_a.init(A, p.lda, p.m, m0, kbeg);
  load_b.init(B, p.ldb, p.n, n0, kbeg);
  load_a.load(p.step_a, k_left, p.vec_a);
  load_b.load(p.step_b, k_left, p.vec_b);
  load_a.store(As[0]);
  load_b.store(Bs[0]);
  __syncthreads();

  // Row sums: the first column of tiles only, one thread per row of the tile (block-uniform).
  const bool sum_rows = p.row_sums != nullptr && n0 == 0;
  float row_sum = 0.0f;

  // Few values stay live across the loop: every register they take is one the accumulators and
  // the shared-memory fragments lack.
  int cur = 0;
  for (int slices_left = slices; slices_left > 0; --slices_left) {
    const bool more = slices_left > 1;
    if (more) {  // prefetch the next slice; its latency hides behind the FMAs below
      if (k_left > BK) {
        k_left -= BK;
      } else {  // the next slice is the first of the next term, whose k range is all of k
        k_left = static_cast<int>(p.k);
        load_a.next_term(p.jump_a);
        load_b.next_term(p.jump_b);
      }
      load_a.load(p.step_a, k_left, p.vec_a);
      load_b.load(p.step_b, k_left, p.vec_b);
    }
#pragma unroll
    for (int kk = 0; kk < BK; ++kk) {
      float af[TM], bf[TN];
#pragma unroll
      for (int i = 0; i < TM / 4; ++i) {
        const float4 v = *reinterpret_cast<const float4*>(&As[cur][kk][row0 + i * kRowStep]);
        af[4 * i + 0] = v.x;
        af[4 * i + 1] = v.y;
        af[4 * i + 2] = v.z;
        af[4 * i + 3] = v.w;
      }
#pragma unroll
      for (int j = 0; j < TN / 4; ++j) {
        const float4 v = *reinterpret_cast<const float4*>(&Bs[cur][kk][col0 + j * kColStep]);
        bf[4 * j + 0] = v.x;
        bf[4 * j + 1] = v.y;
        bf[4 * j + 2] = v.z;
        bf[4 * j + 3] = v.w;
      }
#pragma unroll
      for (int i = 0; i < TM; ++i) {
#pragma unroll
        for (int j = 0; j < TN; ++j) acc[i][j] = fmaf(af[i], bf[j], acc[i][j]);
      }
    }
    if (sum_rows && threadIdx.x < BM) {  // missing k's are zeros: they leave the sum as it is
#pragma unroll
      for (int kk = 0; kk < BK; ++kk) row_sum += As[cur][kk][threadIdx.x];
    }
    // The other buffer was last read in iteration s - 1, and everyone passed the barrier at its
    // end since, so it is free; this iteration's buffer is only overwritten after the barrier.
    if (more) {
      load_a.store(As[cur ^ 1]);
      load_b.store(Bs[cur ^ 1]);
    }
    __syncthreads();
    cur ^= 1;
  }

  // Epilogue: the 4 x 4 sub-tiles, row by row, 4 consecutive columns at a time.
  // Split-K blocks write raw sums to their partial tile (leading dimension n) instead of C; the
  // reduction adds the bias.
  // Everything is addressed from the thread's first output, with 32-bit counts of the rows and
  // columns left in the operand: the 64 accumulators are all live here, and 64-bit row and
  // column indices per output would not fit beside them.
  const int out_batch = place[0], out_split = place[1];
  const int64_t out_m0 = static_cast<int64_t>(place[2]) * BM;
  const int64_t row = out_m0 + row0, col = static_cast<int64_t>(place[3]) * BN + col0;
  const int rows_left = static_cast<int>(min(p.m - row, static_cast<int64_t>(BM)));  // may be < 0
  const int cols_left = static_cast<int>(min(p.n - col, static_cast<int64_t>(BN)));
  float* out;
  int64_t ldo;
  float alpha = p.alpha, beta = p.beta;
  bool vec = p.vec_c;
  const float* bias = nullptr;
  if (p.partial) {
    out = p.partial + (static_cast<int64_t>(out_split) * p.batch + out_batch) * p.m * p.n;
    ldo = p.n;
    alpha = 1.0f;
    beta = 0.0f;
    vec = p.n % 4 == 0;
  } else {
    out = p.c + out_batch * p.stride_c;
    ldo = p.ldc;
    if (p.bias) bias = p.bias + out_batch * p.stride_bias + (p.bias_per_row ? row : col);
  }
  if (sum_rows && threadIdx.x < BM && out_m0 + threadIdx.x < p.m) {
    const int64_t r = out_m0 + threadIdx.x;
    if (p.partial) p.partial_rows[(static_cast<int64_t>(out_split) * p.batch + out_batch) * p.m + r] = row_sum;
    else p.row_sums[out_batch * p.stride_row_sums + r] = row_sum;
  }
  out += row * ldo + col;
#pragma unroll
  for (int i = 0; i < TM; ++i) {
    const int di = (i / 4) * kRowStep + i % 4;  // row offset from the thread's first row
    if (di >= rows_left) continue;
    float* out_row = out + di * ldo;
    const float row_bias = bias && p.bias_per_row ? __ldg(bias + di) : 0.0f;
#pragma unroll
    for (int j = 0; j < TN / 4; ++j) {
      const int dj = j * kColStep;  // column offset from the thread's first column
      if (dj >= cols_left) continue;
      float add[4] = {row_bias, row_bias, row_bias, row_bias};
      if (bias && !p.bias_per_row) {
#pragma unroll
        for (int e = 0; e < 4; ++e) add[e] = dj + e < cols_left ? __ldg(bias + dj + e) : 0.0f;
      }
      write_c(out_row + dj, &acc[i][4 * j], cols_left - dj, vec, alpha, beta, bias != nullptr, add);
    }
  }
}

// Split-K, second step: C = alpha * (sum of the splits' partial tiles, in split order) + beta * C
// + bias; the row sums likewise, from the splits' partial row sums.
__global__ void splitk_reduce_kernel(const Params p, int64_t splits) {
  const int64_t mn = p.m * p.n, total = p.batch * mn;
  for (int64_t idx = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; idx < total;
       idx += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    float sum = 0.0f;
    for (int64_t z = 0; z < splits; ++z) sum += p.partial[z * total + idx];
    const int64_t b = idx / mn, rem = idx - b * mn, row = rem / p.n, col = rem - row * p.n;
    float* dst = p.c + b * p.stride_c + row * p.ldc + col;
    float v = p.alpha * sum;
    if (p.beta != 0.0f) v += p.beta * *dst;
    if (p.bias) v += bias_at(p, b, row, col);
    *dst = v;
  }
  const int64_t rows = p.row_sums ? p.batch * p.m : 0;
  for (int64_t idx = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; idx < rows;
       idx += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    float sum = 0.0f;
    for (int64_t z = 0; z < splits; ++z) sum += p.partial_rows[z * rows + idx];
    const int64_t b = idx / p.m, row = idx - b * p.m;
    p.row_sums[b * p.stride_row_sums + row] = sum;
  }
}

// k == 0 (or no terms): op(A) * op(B) is the zero matrix, so C = beta * C + bias (zeros when
// beta == 0 and there is no bias), and the row sums are zeros.
__global__ void scale_c_kernel(const Params p) {
  const int64_t mn = p.m * p.n, total = p.batch * mn;
  for (int64_t idx = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; idx < total;
       idx += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t b = idx / mn, rem = idx - b * mn, row = rem / p.n, col = rem - row * p.n;
    float* dst = p.c + b * p.stride_c + row * p.ldc + col;
    float v = p.beta != 0.0f ? p.beta * *dst : 0.0f;
    if (p.bias) v += bias_at(p, b, row, col);
    *dst = v;
  }
  const int64_t rows = p.row_sums ? p.batch * p.m : 0;  // sums over nothing
  for (int64_t idx = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; idx < rows;
       idx += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t b = idx / p.m, row = idx - b * p.m;
    p.row_sums[b * p.stride_row_sums + row] = 0.0f;
  }
}

template <class T, bool kTransA, bool kTransB, bool kGatherB = false>
void launch_sgemm(dim3 grid, const Params& p) {
  sgemm_kernel<T, kTransA, kTransB, kGatherB><<<grid, T::kThreads, 0, stream()>>>(p);
}

template <class T, class Sizes>
void run_tiled(const GemmBatch& g, Params p, const Sizes& sizes) {
  p.tiles_m = ceil_div<int64_t>(g.m, T::BM);
  p.tiles_n = ceil_div<int64_t>(g.n, T::BN);
  const int64_t tiles = p.tiles_m * p.tiles_n * g.batch;
  if (tiles > (int64_t{1} << 31) - 1) {
    throw CudaError("gemm: too many output tiles for one launch [" + sizes() + "]");
  }

  // Split the reduction (terms * k products per output) when the tiles alone would leave most
  // multiprocessors idle. Each split keeps at least kMinSplitK products, and the partial tiles
  // stay under 256 MiB of scratch. Whole terms are shared out first; k ranges are cut only when
  // there are fewer terms than splits. A block's k loop (its terms times its k range) must also
  // stay below 2^31 (the kernel counts it in 32 bits), which only a gigantic k hits.
  constexpr int64_t kMinSplitK = 256, kMaxSplits = 64, kMaxPartialFloats = int64_t{1} << 26;
  constexpr int64_t kMaxBlockK = int64_t{1} << 30;
  const int64_t sms = sm_count(), outputs = g.batch * g.m * g.n, products = g.terms * g.k;
  int64_t splits = 1;
  if (tiles < 2 * sms && products >= 2 * kMinSplitK) {
    splits = std::min({ceil_div<int64_t>(2 * sms, tiles), products / kMinSplitK, kMaxSplits});
    splits = std::max<int64_t>(1, std::min(splits, kMaxPartialFloats / std::max<int64_t>(outputs, 1)));
  }
  const int64_t k_splits = std::max({int64_t{1}, splits / g.terms, ceil_div<int64_t>(g.k, kMaxBlockK)});
  p.k_per_split = ceil_div<int64_t>(ceil_div<int64_t>(g.k, k_splits), T::BK) * T::BK;
  p.k_splits = ceil_div<int64_t>(g.k, p.k_per_split);  // every split is non-empty
  p.terms_per_split = p.k_splits > 1 ? 1 : ceil_div<int64_t>(g.terms, splits);
  p.terms_per_split = std::min(p.terms_per_split, std::max<int64_t>(1, kMaxBlockK / p.k_per_split));
  splits = ceil_div<int64_t>(g.terms, p.terms_per_split) * p.k_splits;
  if (splits > 65535) throw CudaError("gemm: k is too large [" + sizes() + "]");
  const int64_t row_sums = g.row_sums ? g.batch * g.m : 0;
  Scratch partial(splits > 1 ? static_cast<size_t>(splits * (outputs + row_sums)) * sizeof(float) : 0);
  p.partial = partial.as<float>();
  p.partial_rows = row_sums && splits > 1 ? p.partial + splits * outputs : nullptr;

  // Several terms per block only when k is not cut (k_splits == 1): each term's k range is then
  // all of k, ceil(k / BK) slices, after which the loaders stand that many steps past the term's
  // start.
  const int64_t step_a = g.trans_a ? T::BK * g.lda : T::BK;  // A transposed is stored k x m
  const int64_t step_b = g.trans_b ? T::BK : T::BK * g.ldb;  // B as stored is k x n
  const int64_t term_slices = ceil_div<int64_t>(g.k, T::BK);
  const int64_t bytes = sizeof(float);
  p.step_a = step_a * bytes;
  p.step_b = step_b * bytes;
  p.jump_a = (g.term_stride_a - term_slices * step_a) * bytes;
  // The PatchLoader moves its image pointer only: by the distance between two terms' images.
  p.jump_b = (g.patches ? g.term_stride_b : g.term_stride_b - term_slices * step_b) * bytes;

  const dim3 grid(static_cast<unsigned int>(tiles), static_cast<unsigned int>(splits));
  if (g.patches) {  // only ever with A as stored (see GemmBatch::patches)
    if (g.trans_b) launch_sgemm<T, false, true, true>(grid, p);
    else launch_sgemm<T, false, false, true>(grid, p);
  } else if (!g.trans_a && !g.trans_b) launch_sgemm<T, false, false>(grid, p);
  else if (!g.trans_a && g.trans_b) launch_sgemm<T, false, true>(grid, p);
  else if (g.trans_a && !g.trans_b) launch_sgemm<T, true, false>(grid, p);
  else launch_sgemm<T, true, true>(grid, p);
  check_launch("launch of sgemm_kernel", sizes);

  if (splits > 1) {
    splitk_reduce_kernel<<<grid_for(std::max(outputs, row_sums), 256), 256, 0, stream()>>>(p, splits);
    check_launch("launch of splitk_reduce_kernel", sizes);
  }
}

}  // namespace

void gemm_batched(const GemmBatch& g) {
  auto sizes = [&] {
    return describe("gemm m=", g.m, " n=", g.n, " k=", g.k, " batch=", g.batch, " terms=", g.terms,
                    " transA=", g.trans_a, " transB=", g.trans_b, " bias=", g.bias ? "yes" : "no");
  };
  if (g.m <= 0 || g.n <= 0 || g.batch <= 0) return;

  Params p{};
  p.m = g.m;
  p.n = g.n;
  p.k = g.k;
  p.a = g.a;
  p.lda = g.lda;
  p.stride_a = g.stride_a;
  p.b = g.b;
  p.ldb = g.ldb;
  p.stride_b = g.stride_b;
  p.c = g.c;
  p.ldc = g.ldc;
  p.stride_c = g.stride_c;
  p.alpha = g.alpha;
  p.beta = g.beta;
  p.batch = g.batch;
  p.terms = g.terms;
  p.term_stride_a = g.term_stride_a;
  p.term_stride_b = g.term_stride_b;
  p.bias = g.bias;
  p.stride_bias = g.stride_bias;
  p.bias_per_row = g.bias_per_row;
  p.row_sums = g.row_sums;
  p.stride_row_sums = g.stride_row_sums;
  p.vec_a = aligned16(g.a) && g.lda % 4 == 0 && g.stride_a % 4 == 0 && g.term_stride_a % 4 == 0;
  p.vec_b = aligned16(g.b) && g.ldb % 4 == 0 && g.stride_b % 4 == 0 && g.term_stride_b % 4 == 0;
  if (g.patches) {
    if (g.trans_a) throw CudaError("gemm: gathered patches need A as stored [" + sizes() + "]");
    p.patches = *g.patches;
    p.vec_b = false;  // the gather loads scalars
  }
  p.vec_c = aligned16(g.c) && g.ldc % 4 == 0 && g.stride_c % 4 == 0;

  if (g.k <= 0 || g.terms <= 0) {
    scale_c_kernel<<<grid_for(g.batch * g.m * g.n, 256), 256, 0, stream()>>>(p);  // covers batch * m too
    check_launch("launch of scale_c_kernel", sizes);
    return;
  }
  // Which tile. A tile multiplies all its BM x BN outputs over every k, whether they exist or not,
  // so what a shape costs is ceil(m / BM) * BM rows times ceil(n / BN) * BN columns.
  //
  // m <= 32: the 32 x 128 tile. With m = 20 (a convolution with 20 filters: m is the output
  // channels, n the pixels) a 32-row tile wastes 12 / 32 = 37.5% of its FMAs on missing rows, a
  // 64-row tile 44 / 64 = 69% and a 128-row tile 108 / 128 = 84%: for the same columns the short
  // tile does half the FMAs of the 64 x 64 one and a quarter of the 128 x 128 one. Along n it
  // covers ceil(n / 128) * 128 columns, at most twice the 64 x 64 tile's ceil(n / 64) * 64: with
  // half the rows it never multiplies more. Each of its blocks has the work of a 64 x 64 block
  // (4096 outputs, 16 FMAs per thread per k), so it fills the GPU as the 64 x 64 tile would, from
  // half as many blocks: 40,000 columns make 313 tiles, 2.4 per multiprocessor of 132 (more than
  // the 264 blocks resident at once, two per multiprocessor); a forward convolution batched over
  // 64 samples of 26 x 26 = 676 pixels makes 6 * 64 = 384. With few tiles the
  // 64 x 64 shape would not finish sooner: twice the blocks, each with the same work, running at
  // the same time; and a long k is split over blocks (split-K) for both.
  // What 4 x 4 per thread costs: per kk it reads 8 floats of shared memory for 16 FMAs, twice the
  // 128 x 128 tile's 16 for 64, so where shared-memory bandwidth bounds it runs at about half the
  // large tile's FMA rate; four times fewer FMAs still make it twice as fast. (Its k is padded
  // to a multiple of 16 where the large tile's is a multiple of 8: for k <= 8 that is twice the
  // k steps, against four times fewer rows.)
  // 32 < m <= 64 gains nothing from short tiles: two 32-row tiles cover 64 rows, as one 64-row
  // tile does (m = 50 wastes 22% either way), and 256 threads owning 4 x 4 sub-tiles cannot make
  // a tile 48 rows tall (3 warp rows of 16 do not divide 8 warps).
  //
  // Otherwise the large tile when it still gives at least one block per multiprocessor.
  const int64_t large_tiles = ceil_div<int64_t>(g.m, LargeTile::BM) * ceil_div<int64_t>(g.n, LargeTile::BN) * g.batch;
  if (g.m <= ShortTile::BM) run_tiled<ShortTile>(g, p, sizes);
  else if (large_tiles >= sm_count()) run_tiled<LargeTile>(g, p, sizes);
  else run_tiled<SmallTile>(g, p, sizes);
}

}  // namespace detail

void gemm(bool transA, bool transB, int64_t m, int64_t n, int64_t k, float alpha, const float* A, const float* B,
          float beta, float* C) {
  detail::GemmBatch g;
  g.trans_a = transA;
  g.trans_b = transB;
  g.m = m;
  g.n = n;
  g.k = k;
  g.alpha = alpha;
  g.beta = beta;
  g.a = A;
  g.lda = transA ? m : k;
  g.b = B;
  g.ldb = transB ? k : n;
  g.c = C;
  g.ldc = n;
  detail::gemm_batched(g);
}

void linear_forward(int64_t m, int64_t n, int64_t k, const float* x, const float* w, const float* bias, float* y) {
  detail::GemmBatch g;
  g.trans_b = true;  // w is stored (n, k)
  g.m = m;
  g.n = n;
  g.k = k;
  g.a = x;
  g.lda = k;
  g.b = w;
  g.ldb = k;
  g.c = y;
  g.ldc = n;
  g.bias = bias;  // one per output feature: per column of y
  detail::gemm_batched(g);
}

void linear_backward_weight(int64_t m, int64_t n, int64_t k, const float* dy, const float* x, float* dw, float* db) {
  if (k <= 0) {  // no weights: the bias gradient alone
    if (db) reduce_sum(1, m, n, 1.0f, dy, db);
    return;
  }
  detail::GemmBatch g;
  g.trans_a = true;  // dy^T: dy is stored (m, n)
  g.m = n;
  g.n = k;
  g.k = m;
  g.a = dy;
  g.lda = n;
  g.b = x;
  g.ldb = k;
  g.c = dw;
  g.ldc = k;
  g.row_sums = db;  // the rows of dy^T: db[o] = sum over samples of dy[., o]
  detail::gemm_batched(g);
}

}  // namespace kg::cuda
