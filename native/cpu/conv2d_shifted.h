// Convolutions whose GEMM reads its B operand straight from the input ("shifted views").
//
// With unit stride and no padding (padding made explicit, conv_padding.h), tap (ci, ki, kj)
// of output pixel (oy, ox) reads x[ci, oy + ki, ox + kj] = plane[(ci * h + ki) * w + kj + q'] with
// q' = oy * w + ox. Counting the output's columns over the input's width w instead of ow -- "wide
// columns" q', of which those with ox >= ow are computed and dropped -- every tap's row of the
// column matrix is then one contiguous run of the input: the micro-kernel reads it in place
// (gemm_micro_kernel_shifted_group), and nothing is packed but the filters, once per call. A
// stride is handled by splitting each sample into phase planes first; on small planes, where the
// dropped columns would be many (a quarter on an 8x8 image), each sample is copied once per
// kernel column instead, and none is dropped (ShiftedInput, below).
//
// The GEMM path packs each column-matrix element before the micro-kernel uses it k (filters)
// times; with few filters (a CIFAR ResNet's 16 to 64) that gather took most of the time.
//
// The results are bitwise the GEMM path's: each output is the same micro-kernel's sum over the
// same k blocks of the same values, plus the bias after the first block.
#pragma once
#include <cstdint>
#include <optional>
#include <vector>

#include "host_allocator.h"
#include "kg/shapes.h"

namespace kg::cpu {

// Whether s takes the shifted path: one group, at least 2 channels and 6 filters, a stride no
// larger than the kernel, padding that conv_padding.h makes explicit, and in the by-phase layout
// below dropped columns at most a quarter of the kept ones. (The forward may then read the
// by-column layout; the filter gradient's kernels read the by-phase one: with the by-column
// copies, kw times the input to sweep, both measured slower.)
bool shifted_conv(const ConvShape& s);

// What the shifted views read, in one of two layouts of a sample, zero-padded:
//  - by column: one copy of the sample per kernel column kj, copy kj holding x[ci, y, ox * sw +
//    kj] at row y, column ox < ow (pitch = ow), its rows split into sh phases with a stride sh > 1
//    -- phase a holds rows i * sh + a of the padded plane. Tap (ci, ki, kj) is copy kj, phase
//    ki % sh shifted down by ki / sh rows, and every column is kept: the copies cost kw writes of
//    the input, where the other layout would compute (pitch - ow) / ow more multiply-adds, a
//    quarter on an 8x8 image. Taken where the copies fit in a quarter of an L2 and cost less than
//    those multiply-adds would.
//  - by phase: the padded planes themselves (pitch = w + 2 pw), split with a stride into sh x sw
//    phase planes -- phase (a, b) holds rows i * sh + a and columns j * sw + b -- so that tap
//    (ci, ki, kj) is phase (ki % sh, kj % sw) shifted by (ki / sh, kj / sw). The columns ox >= ow
//    of each output row are computed and dropped: taken on large planes, where they are few.
// Either way wide column q' = oy * pitch + ox (ox < pitch, kept when ox < ow) of tap t is element
// tap[t] + q' of the prepared sample.
enum class ShiftedLayout { ByColumn, ByPhase };

struct ShiftedInput {
  ShiftedLayout layout;      // by column or by phase, as above
  int64_t rows, pitch;       // a (phase) plane's size
  int64_t wide;              // wide columns per sample: oh * pitch
  int64_t floats;            // a prepared sample, with room for the reads of dropped columns past it
  std::vector<int64_t> tap;  // per tap (ci, ki, kj), its offset

  // The layout shifted_conv_forward takes for s: by column where it serves, else by phase.
  explicit ShiftedInput(const ConvShape& s);
  ShiftedInput(const ConvShape& s, ShiftedLayout layout);
  bool by_column() const { return layout == ShiftedLayout::ByColumn; }
  // dst (floats) = sample `sample` of x prepared, zeros after it.
  void prepare(const ConvShape& s, const float* x, int64_t sample, float* dst) const;
  // The same prepared samples (of s) read by a convolution t with t.c channels and a smaller
  // kernel, whose tap (ci, ki, kj) is s's tap (ci, ki + down, kj + right), and t.oh output rows
  // (at most s.oh): its wide columns have s's pitch, so those past t.ow are dropped.
  ShiftedInput view(const ConvShape& s, const ConvShape& t, int64_t down, int64_t right) const;
};

// A convolution on the shifted path (a shape shifted_conv accepts), its filters w packed once.
struct ShiftedConv {
  ConvShape s;
  ShiftedInput in;
  int64_t CKK, P, chunks, kc_max, panel_rows;
  HostBuffer filters;  // micro-panels, k block by k block: block p0 at filters + p0 * panel_rows

  ShiftedConv(const ConvShape& shape, const float* w);
  // The same reading samples prepared as `input` says (a view of another convolution's, say).
  ShiftedConv(const ConvShape& shape, const float* w, ShiftedInput input);
  // The outputs (y_sample: k planes of oh x ow) of one sample, prepared into xp (in.floats), its
  // chunks on the calling thread or, with `parallel`, shared by the pool's threads.
  void sample(const float* x, int64_t sample, float* xp, const float* bias, float* y_sample, bool parallel) const;
  // The outputs over wide columns [chunk * 64, chunk * 64 + 64) of one sample, from its prepared
  // copy xp, whole tiles at a time: out holds k planes of in.wide floats (oh rows of in.pitch, the
  // first ow of each an output; the output itself where no column is dropped).
  void chunk(const float* xp, int64_t chunk, const float* bias, float* out) const;
  // Whether columns are dropped (in.pitch > ow).
  bool dropped() const { return in.pitch != s.ow; }
};

// y = conv(x, w) + bias, as conv2d_forward, for a shape shifted_conv accepts. Each sample is
// zero-padded into a buffer of its own first (with room for the dropped columns' reads past it).
void shifted_conv_forward(const ConvShape& s, const float* x, const float* w, const float* bias, float* y);

// dw = the filter gradient, and db the bias gradient where db is not null, as
// conv2d_backward_weight, for a shape shifted_conv accepts (conv2d_shifted_weight.cpp: the GEMM
// with the column matrix read in place; with at most 16 filters, _lanes: vectors along the output
// pixels, whose last bits depend on the vector width).
void shifted_conv_backward_weight(const ConvShape& s, const float* x, const float* dy, float* dw, float* db);
void shifted_conv_backward_weight_lanes(const ConvShape& s, const float* x, const float* dy, float* dw, float* db);

// Backward data of a strided convolution s, as sh x sw stride-1 convolutions on the shifted path,
// one per phase of dx (conv2d_strided_data.cpp). False, with nothing written, where s has unit
// strides, groups, a stride past its kernel or past 8, or where shifted_conv refuses the
// convolution of phase (0, 0), whose prepared dy every phase reads.
bool strided_backward_data(const ConvShape& s, const float* dy, const float* w, float* dx);

// Backward data of a stride-1 convolution s as a convolution: dx = dy convolved with the filters
// turned around (w'[ci, k, ki, kj] = w[k, ci, kh - 1 - ki, kw - 1 - kj]) and padding kh - 1 - ph,
// kw - 1 - pw. transposed_conv returns its shape (over dy, with the input's size as output), or
// nothing where s has a stride, groups or padding as wide as the kernel; turn_filters writes w'.
std::optional<ConvShape> transposed_conv(const ConvShape& s);
void turn_filters(const ConvShape& s, const float* w, float* turned);

}  // namespace kg::cpu
