// Convolutions whose GEMM reads its B operand straight from the input ("shifted views").
//
// With unit stride and no padding (padding made explicit, conv_padding.h), tap (ci, ki, kj)
// of output pixel (oy, ox) reads x[ci, oy + ki, ox + kj] = plane[(ci * h + ki) * w + kj + q'] with
// q' = oy * w + ox. Counting the output's columns over the input's width w instead of ow -- "wide
// columns" q', of which those with ox >= ow are computed and dropped -- every tap's row of the
// column matrix is then one contiguous run of the input: the micro-kernel reads it in place
// (gemm_micro_kernel_shifted_group), and nothing is packed but the filters, once per call. A
// stride is handled by splitting each sample into phase planes first (ShiftedInput, below).
//
// The GEMM path packs each column-matrix element before the micro-kernel uses it k (filters)
// times; with few filters (a CIFAR ResNet's 16 to 64) that gather took most of the time. Here
// the cost is the dropped columns, (pitch - ow) / ow more multiply-adds, so the path is taken
// where that is small (the padded 3x3 layers of 8x8 images and up).
//
// The results are bitwise the GEMM path's: each output is the same micro-kernel's sum over the
// same k blocks of the same values, plus the bias after the first block.
#pragma once
#include <cstdint>
#include <optional>
#include <vector>

#include "kg/shapes.h"

namespace kg::cpu {

// Whether the forward of s takes the shifted path: one group, at least 2 channels and 6 filters,
// a stride no larger than the kernel, padding that conv_padding.h makes explicit, and dropped
// columns at most a quarter of the kept ones.
bool shifted_conv(const ConvShape& s);

// What the shifted views read: a sample's planes zero-padded and, with a stride (sh, sw) > 1,
// split into sh x sw phase planes -- phase (a, b) holds rows i * sh + a and columns j * sw + b of
// the padded plane -- so that a strided convolution's taps are contiguous runs too: tap (ci, ki,
// kj) is phase (ki % sh, kj % sw) shifted by (ki / sh, kj / sw). Wide column q' = oy * pitch + ox
// (ox < pitch, kept when ox < ow) of tap t is then element tap[t] + q' of the prepared sample.
struct ShiftedInput {
  int64_t rows, pitch;       // a phase plane's size
  int64_t wide;              // wide columns per sample: oh * pitch
  int64_t floats;            // a prepared sample, with room for the reads of dropped columns past it
  std::vector<int64_t> tap;  // per tap (ci, ki, kj), its offset

  explicit ShiftedInput(const ConvShape& s);
  // dst (floats) = sample `sample` of x prepared, zeros after it.
  void prepare(const ConvShape& s, const float* x, int64_t sample, float* dst) const;
};

// y = conv(x, w) + bias, as conv2d_forward, for a shape shifted_conv accepts. Each sample is
// zero-padded into a buffer of its own first (with room for the dropped columns' reads past it).
void shifted_conv_forward(const ConvShape& s, const float* x, const float* w, const float* bias, float* y);

// dw = the filter gradient, as conv2d_backward_weight, for a shape shifted_conv accepts
// (conv2d_shifted_weight.cpp: the GEMM with the column matrix read in place; with at most 16
// filters, _lanes: vectors along the output pixels, whose last bits depend on the vector width).
void shifted_conv_backward_weight(const ConvShape& s, const float* x, const float* dy, float* dw);
void shifted_conv_backward_weight_lanes(const ConvShape& s, const float* x, const float* dy, float* dw);

// Backward data of a stride-1 convolution s as a convolution: dx = dy convolved with the filters
// turned around (w'[ci, k, ki, kj] = w[k, ci, kh - 1 - ki, kw - 1 - kj]) and padding kh - 1 - ph,
// kw - 1 - pw. transposed_conv returns its shape (over dy, with the input's size as output), or
// nothing where s has a stride, groups or padding as wide as the kernel; turn_filters writes w'.
std::optional<ConvShape> transposed_conv(const ConvShape& s);
void turn_filters(const ConvShape& s, const float* w, float* turned);

}  // namespace kg::cpu
