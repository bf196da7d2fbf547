// The block sizes of the caching allocators (host and CUDA): four classes per power of two
// (1, 1.25, 1.5, 1.75 times 2^k) above a minimum block. A block wastes at most a quarter of
// itself, and few distinct sizes means a freed block is often the right size for the next request.
#pragma once

#include <algorithm>
#include <cstddef>

namespace kg {

inline size_t size_class(size_t bytes, size_t min_block) {
  if (bytes <= min_block) return min_block;
  const size_t pow2 = size_t{1} << (63 - __builtin_clzll(static_cast<unsigned long long>(bytes)));
  const size_t step = std::max(min_block, pow2 / 4);
  return (bytes + step - 1) / step * step;
}

}  // namespace kg
