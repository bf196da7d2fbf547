// Zero padding made explicit. A convolution with padding (ph, pw) is the same convolution without
// padding of the input zero-padded by (ph, pw): forward and the filter gradient can run on a padded
// copy of x, and backward data can compute the gradient of the padded input and keep its interior.
// The GEMM-based kernels then find every kernel window inside the image and take their fast paths
// (packing straight from x, col2im row by row) on every column, where a column whose window reaches
// into the padding went through im2col's bounds handling: on a CIFAR ResNet's 3x3 layers (8x8 to
// 32x32 planes, padding 1) nearly every column does, and that handling took more than half the
// time. The copy costs one pass over x (or dx).
//
// The results are those of the unpadded convolution of the padded input; both forms agree with the
// float64 reference to fp32 rounding (test/native/conv2d.test.ts).
#pragma once
#include "kg/shapes.h"

namespace kg::cpu {

// Whether `s` has padding and its padded planes are not much larger than the input's (padding up
// to a few times the kernel, as networks use; a larger one keeps the bounds handling, whose memory
// does not grow with it).
bool pad_explicitly(const ConvShape& s);

// s without padding, over the padded input: h + 2 ph by w + 2 pw, the same output.
ConvShape padded_input_shape(const ConvShape& s);

// xp (n, c, h + 2ph, w + 2pw) = x (n, c, h, w) with a border of zeros.
void pad_planes(const ConvShape& s, const float* x, float* xp);

// dx (n, c, h, w) = the interior of dxp (n, c, h + 2ph, w + 2pw).
void crop_planes(const ConvShape& s, const float* dxp, float* dx);

}  // namespace kg::cpu
