// The vocabulary of what a request tells about a range of an image,
// shared by everything that learns the image from requests (BlockTable,
// WholeDigest):
//
//   put_data / put_zero    new content (a write, a write of zeroes):
//                          replaces what was known of the range
//   fill_data / fill_zero  content seen (a read, a zero extent): sets
//                          only what is not known yet, never overriding
//                          what a write put there
//
// A class derives from ContentRecorder<itself> and implements, usually
// privately with ContentRecorder<itself> as a friend:
//
//   void record(uint64_t offset, uint64_t length, const uint8_t* data,
//               ContentSource source);
//
// where `data` is null for zeros.  What a range beyond the image, or a
// failure, does is the derived class's contract.

#ifndef BLKHASH_CONTENT_RECORDER_H
#define BLKHASH_CONTENT_RECORDER_H

#include <cstdint>
#include <span>

namespace blkhash {

// Where content came from: a write replaces, an observation only fills.
enum class ContentSource { kWrite, kObserved };

template <typename Derived>
class ContentRecorder {
 public:
  void put_data(uint64_t offset, std::span<const uint8_t> data) {
    self().record(offset, data.size(), data.data(), ContentSource::kWrite);
  }
  void put_zero(uint64_t offset, uint64_t length) {
    self().record(offset, length, nullptr, ContentSource::kWrite);
  }
  void fill_data(uint64_t offset, std::span<const uint8_t> data) {
    self().record(offset, data.size(), data.data(), ContentSource::kObserved);
  }
  void fill_zero(uint64_t offset, uint64_t length) {
    self().record(offset, length, nullptr, ContentSource::kObserved);
  }

 protected:
  ContentRecorder() = default;
  ~ContentRecorder() = default;

 private:
  Derived& self() { return static_cast<Derived&>(*this); }
};

}  // namespace blkhash

#endif  // BLKHASH_CONTENT_RECORDER_H
