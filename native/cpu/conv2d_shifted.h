// Stride-1 convolutions whose GEMM reads its B operand straight from the input ("shifted views").
//
// With unit stride and no padding (padding made explicit, conv_padding.h), tap (ci, ki, kj)
// of output pixel (oy, ox) reads x[ci, oy + ki, ox + kj] = plane[(ci * h + ki) * w + kj + q'] with
// q' = oy * w + ox. Counting the output's columns over the input's width w instead of ow -- "wide
// columns" q', of which those with ox >= ow are computed and dropped -- every tap's row of the
// column matrix is then one contiguous run of the input: the micro-kernel reads it in place
// (gemm_micro_kernel_shifted_group), and nothing is packed but the filters, once per call.
//
// The GEMM path packs each column-matrix element before the micro-kernel uses it k (filters)
// times; with few filters (a CIFAR ResNet's 16 to 64) that gather took most of the time. Here
// the cost is the dropped columns, (w - ow) / ow more multiply-adds, so the path is taken where
// that is small (the padded 3x3 layers of 8x8 images and up).
//
// The results are bitwise the GEMM path's: each output is the same micro-kernel's sum over the
// same k blocks of the same values, plus the bias after the first block.
#pragma once
#include <cstdint>

#include "kg/shapes.h"

namespace kg::cpu {

// Whether the forward of s takes the shifted path: unit stride, one group, padding that
// conv_padding.h makes explicit, and dropped columns at most a quarter of the kept ones.
bool shifted_conv(const ConvShape& s);

// y = conv(x, w) + bias, as conv2d_forward, for a shape shifted_conv accepts. Each sample is
// zero-padded into a buffer of its own first (with room for the dropped columns' reads past it).
void shifted_conv_forward(const ConvShape& s, const float* x, const float* w, const float* bias, float* y);

}  // namespace kg::cpu
