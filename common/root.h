// The outer hash of blkhash: the fold of leaves into the root.
//
//   root = H(leaf 0 || ... || leaf n-1 || LE64(L))   (see parameters.h)
//
// RootBuilder is that hash: leaves go in strictly in block order, then
// the image length.  A clone is a checkpoint to come back to.

#ifndef BLKHASH_ROOT_H
#define BLKHASH_ROOT_H

#include <cstdint>
#include <memory>

#include "digest.h"
#include "parameters.h"

namespace blkhash {

// Folds leaves, given in block order, and the image length into the root.
class RootBuilder {
 public:
  explicit RootBuilder(const Parameters& parameters);

  void add_leaf(const uint8_t* leaf);

  // Adds `count` leaves stored back to back.
  void add_leaves(const uint8_t* leaves, uint64_t count);

  // Adds the zero-block leaf `count` times.
  void add_zero_leaves(uint64_t count);

  // Appends LE64(image_length) and returns the root.  Call once.
  DigestValue finish(uint64_t image_length);

  // A builder holding the same leaves, which then goes on independently:
  // a checkpoint to return to, or the root so far without ending this one.
  RootBuilder clone() const;

 private:
  RootBuilder(const Parameters& parameters, std::unique_ptr<Hasher> outer);

  const Parameters& parameters_;
  std::unique_ptr<Hasher> outer_;
};

}  // namespace blkhash

#endif  // BLKHASH_ROOT_H
