// The average-pooling shape argument of the bindings, shared by the pooling and the fused batch
// norm + pooling bindings.
#pragma once
#include "args.h"
#include "kg/shapes.h"

namespace kg {

// [n, c, h, w, kh, kw, sh, sw] -> PoolShape with the output size.
inline PoolShape pool_shape(const Args& a, size_t i) {
  auto v = a.ints(i, "shape", 8);
  PoolShape s{v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], 0, 0};
  if (s.kh < 1 || s.kw < 1 || s.sh < 1 || s.sw < 1) {
    throw Napi::RangeError::New(a.env(), a.prefix() + "kernel size and stride must be at least 1");
  }
  if (s.h < s.kh || s.w < s.kw) {
    throw Napi::RangeError::New(a.env(), a.prefix() + "the pooling window is larger than the input");
  }
  s.oh = (s.h - s.kh) / s.sh + 1;
  s.ow = (s.w - s.kw) / s.sw + 1;
  return s;
}

}  // namespace kg
