// See zero.h for the method.

#include "zero.h"

#include <cstdint>
#include <cstring>

namespace blkhash {

bool is_zero(const void* data, size_t length) {
  const auto* bytes = static_cast<const unsigned char*>(data);
  constexpr size_t kHead = 16;
  size_t head = length < kHead ? length : kHead;
  for (size_t i = 0; i < head; i++)
    if (bytes[i] != 0) return false;
  if (length <= kHead) return true;
  return std::memcmp(bytes, bytes + kHead, length - kHead) == 0;
}

}  // namespace blkhash
