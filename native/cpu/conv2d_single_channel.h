// The direct convolution of conv2d_single_channel.cpp, which conv2d.cpp uses for the shapes it
// covers (a network's first layer on grey images) instead of the GEMM lowering.
#pragma once
#include <cstdint>

#include "kg/shapes.h"

namespace kg::cpu {

// The widest filter the fast path takes.
constexpr int64_t kMaxKw = 7;

// One input channel, unit stride, no padding, kw <= kMaxKw, and something to compute.
bool single_channel_conv(const ConvShape& s);

// As conv2d_forward and conv2d_backward_weight, for shapes where single_channel_conv(s).
void single_channel_conv_forward(const ConvShape& s, const float* x, const float* w, const float* bias, float* y);
void single_channel_conv_backward_weight(const ConvShape& s, const float* x, const float* dy, float* dw);

}  // namespace kg::cpu
