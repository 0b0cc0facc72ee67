// See block_map.h for the format.
//
// Invariants: a BlockMap's runs_ cover blocks [0, block_count_) in order,
// without gaps or overlaps, each at least one block; a data run's leaves
// are leaves_[run.leaves .. + run.count * d); root_ is the root those
// leaves recompute (parse() refuses anything else).  The writer's body_
// always ends with the open run (its count patched when it ends).

#include "block_map.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>

namespace blkhash {

namespace {

void put_u64(std::string& out, uint64_t v) {
  for (int i = 0; i < 8; i++) out.push_back(static_cast<char>(v >> (8 * i)));
}

void put_u32(std::string& out, uint32_t v) {
  for (int i = 0; i < 4; i++) out.push_back(static_cast<char>(v >> (8 * i)));
}

// Reads the map's bytes in order; every read past the end throws.
class Cursor {
 public:
  explicit Cursor(std::span<const uint8_t> bytes) : bytes_(bytes) {}
  std::span<const uint8_t> take(uint64_t n, const char* what) {
    if (n > bytes_.size() - at_)
      throw BlockMapError(std::string("truncated map: no room for ") + what);
    auto out = bytes_.subspan(at_, n);
    at_ += n;
    return out;
  }
  uint64_t le(unsigned n, const char* what) {
    auto b = take(n, what);
    uint64_t v = 0;
    for (unsigned i = 0; i < n; i++) v |= uint64_t{b[i]} << (8 * i);
    return v;
  }
  bool at_end() const { return at_ == bytes_.size(); }

 private:
  std::span<const uint8_t> bytes_;
  size_t at_ = 0;
};

uint64_t blocks_of(uint64_t image_size, uint32_t block_size) {
  return image_size / block_size + (image_size % block_size != 0);
}

// The leaf of the short final block's zeros, or empty if there is none.
DigestValue short_zero_leaf(const Parameters& parameters, uint64_t size) {
  const uint32_t tail = static_cast<uint32_t>(size % parameters.block_size());
  return tail ? parameters.zero_leaf(tail) : DigestValue();
}

}  // namespace

// --- BlockRangeList ---------------------------------------------------------

void BlockRangeList::add(uint64_t first, uint64_t count) {
  if (count == 0) return;
  if (ranges_ > 0 && first < last_end_)
    throw std::logic_error("BlockRangeList: blocks out of order");
  blocks_ += count;
  if (ranges_ > 0 && first == last_end_) {
    if (kept_.size() == ranges_) kept_.back().count += count;
  } else {
    ranges_++;
    if (kept_.size() < max_kept_) kept_.push_back({first, count});
  }
  last_end_ = first + count;
}

std::string BlockRangeList::text() const {
  std::string out;
  for (const BlockRange& r : kept_) {
    if (!out.empty()) out += ',';
    out += std::to_string(r.first);
    if (r.count > 1) out += '-' + std::to_string(r.end() - 1);
  }
  if (kept_.size() < ranges_)
    out += ",... (" + std::to_string(ranges_) + " ranges)";
  return out;
}

// --- BlockMap ----------------------------------------------------------------

// One pass over the bytes in the order of the format (the man page's
// BLOCK MAPS): the header, the records, then the root
// recomputed from them.  It is long because the format is; each step
// checks what it read before the next one relies on it.
BlockMap BlockMap::parse(std::span<const uint8_t> bytes,
                         const std::optional<DigestValue>& expected_root) {
  Cursor in(bytes);
  auto magic = in.take(sizeof kBlockMapMagic, "the magic");
  if (std::memcmp(magic.data(), kBlockMapMagic, sizeof kBlockMapMagic) != 0)
    throw BlockMapError("not a block map (bad magic)");
  const uint64_t version = in.le(4, "the version");
  if (version != kBlockMapVersion)
    throw BlockMapError("unsupported block map version " +
                        std::to_string(version));
  const uint64_t block_size = in.le(4, "the block size");
  if (!is_valid_block_size(block_size))
    throw BlockMapError("bad block size " + std::to_string(block_size));

  BlockMap map;
  map.image_size_ = in.le(8, "the image size");
  const uint64_t name_length = in.le(1, "the digest name length");
  const uint64_t digest_size = in.le(1, "the digest size");
  if (name_length == 0 || name_length > 64)
    throw BlockMapError("bad digest name length");
  auto name = in.take(name_length, "the digest name");
  map.digest_name_.assign(name.begin(), name.end());
  map.parameters_ = std::make_unique<Parameters>(
      DigestAlgorithm::create(map.digest_name_),
      static_cast<uint32_t>(block_size));
  const size_t d = map.parameters_->digest_size();
  if (digest_size != d)
    throw BlockMapError("digest size " + std::to_string(digest_size) +
                        " is not " + map.digest_name_ + "'s " +
                        std::to_string(d));
  map.root_ = DigestValue(in.take(d, "the root"));
  map.block_count_ = blocks_of(map.image_size_, map.block_size());
  if (map.block_count_ > (uint64_t{1} << 40))
    throw BlockMapError("image size too large");
  map.short_zero_leaf_ = short_zero_leaf(*map.parameters_, map.image_size_);

  RootBuilder outer(*map.parameters_);
  uint64_t block = 0;
  while (block < map.block_count_) {
    const uint64_t type = in.le(1, "a record type");
    const uint64_t count = in.le(8, "a record count");
    if (count == 0 || count > map.block_count_ - block)
      throw BlockMapError("bad run length at block " + std::to_string(block));
    if (type == 'Z') {
      map.runs_.push_back({block, count, true, 0});
      const bool has_short = block + count == map.block_count_ &&
                             map.short_zero_leaf_.size() > 0;
      outer.add_zero_leaves(count - has_short);
      if (has_short) outer.add_leaf(map.short_zero_leaf_.data());
    } else if (type == 'D') {
      if (count > (bytes.size() / d))
        throw BlockMapError("truncated map: data run at block " +
                            std::to_string(block));
      auto leaves = in.take(count * d, "the leaves of a data run");
      map.runs_.push_back({block, count, false, map.leaves_.size()});
      map.leaves_.insert(map.leaves_.end(), leaves.begin(), leaves.end());
      outer.add_leaves(leaves.data(), count);
    } else {
      throw BlockMapError("bad record type at block " + std::to_string(block));
    }
    block += count;
  }
  if (!in.at_end()) throw BlockMapError("bytes after the last record");
  const DigestValue recomputed = outer.finish(map.image_size_);
  if (!(recomputed == map.root_))
    throw BlockMapError("the root " + map.root_.hex() +
                        " does not recompute from the leaves (they give " +
                        recomputed.hex() + ")");
  if (expected_root && !(*expected_root == map.root_))
    throw BlockMapError("the map's root " + map.root_.hex() +
                        " is not the expected " + expected_root->hex());
  return map;
}

BlockMap BlockMap::load(const std::string& path,
                        const std::optional<DigestValue>& expected_root) {
  std::ifstream file(path, std::ios::binary);
  if (!file)
    throw BlockMapError("cannot open " + path + ": " + std::strerror(errno));
  std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(file)),
                             std::istreambuf_iterator<char>());
  if (file.bad()) throw BlockMapError("cannot read " + path);
  return parse(bytes, expected_root);
}

const BlockMap::Run& BlockMap::run_of(uint64_t block) const {
  if (block >= block_count_) throw std::out_of_range("block beyond the map");
  auto it = std::upper_bound(
      runs_.begin(), runs_.end(), block,
      [](uint64_t b, const Run& run) { return b < run.first; });
  return *std::prev(it);
}

const DigestValue& BlockMap::zero_leaf(uint64_t block) const {
  return block + 1 == block_count_ && short_zero_leaf_.size() > 0
             ? short_zero_leaf_
             : parameters_->zero_leaf();
}

DigestValue BlockMap::leaf(uint64_t block) const {
  const Run& run = run_of(block);
  if (run.zero) return zero_leaf(block);
  const size_t d = parameters_->digest_size();
  return DigestValue(
      {leaves_.data() + run.leaves + (block - run.first) * d, d});
}

bool BlockMap::leaf_equals(uint64_t block, const uint8_t* leaf) const {
  const Run& run = run_of(block);
  const size_t d = parameters_->digest_size();
  const uint8_t* expected =
      run.zero ? zero_leaf(block).data()
               : leaves_.data() + run.leaves + (block - run.first) * d;
  return std::memcmp(expected, leaf, d) == 0;
}

BlockRangeList BlockMap::diff(const BlockMap& a, const BlockMap& b,
                              size_t max_kept) {
  if (a.digest_name_ != b.digest_name_ || a.block_size() != b.block_size() ||
      a.image_size_ != b.image_size_)
    throw BlockMapError("the maps differ in digest, block size or size: " +
                        a.digest_name_ + "/" + std::to_string(a.block_size()) +
                        "/" + std::to_string(a.image_size_) + " vs " +
                        b.digest_name_ + "/" + std::to_string(b.block_size()) +
                        "/" + std::to_string(b.image_size_));
  BlockRangeList out(max_kept);
  if (a.root_ == b.root_) return out;
  // Walk both run lists together: a stretch where both are zero runs is
  // equal without looking at its blocks.
  size_t i = 0, j = 0;
  uint64_t block = 0;
  while (block < a.block_count_) {
    while (a.runs_[i].end() <= block) i++;
    while (b.runs_[j].end() <= block) j++;
    const Run& ra = a.runs_[i];
    const Run& rb = b.runs_[j];
    const uint64_t end = std::min(ra.end(), rb.end());
    if (ra.zero && rb.zero) {
      block = end;
      continue;
    }
    for (; block < end; block++)
      if (!b.leaf_equals(block, a.leaf(block).data())) out.add(block);
  }
  return out;
}

// --- BlockMapWriter ----------------------------------------------------------

BlockMapWriter::BlockMapWriter(const Parameters& parameters,
                               uint64_t image_size)
    : parameters_(parameters),
      image_size_(image_size),
      block_count_(blocks_of(image_size, parameters.block_size())),
      short_zero_leaf_(short_zero_leaf(parameters, image_size)),
      outer_(parameters) {}

void BlockMapWriter::end_run() {
  if (!in_run_) return;
  for (int i = 0; i < 8; i++)
    body_[run_count_at_ + i] = static_cast<char>(run_count_ >> (8 * i));
  in_run_ = false;
}

void BlockMapWriter::start_run(bool zero) {
  if (in_run_ && run_zero_ == zero) return;
  end_run();
  body_.push_back(zero ? 'Z' : 'D');
  run_count_at_ = body_.size();
  put_u64(body_, 0);
  in_run_ = true;
  run_zero_ = zero;
  run_count_ = 0;
}

void BlockMapWriter::add_leaf(const uint8_t* leaf) {
  if (added_ >= block_count_)
    throw std::logic_error("BlockMapWriter: more leaves than blocks");
  const size_t d = parameters_.digest_size();
  const bool is_short = added_ + 1 == block_count_ && short_zero_leaf_.size();
  const DigestValue& zero =
      is_short ? short_zero_leaf_ : parameters_.zero_leaf();
  if (std::memcmp(leaf, zero.data(), d) == 0) {
    add_zero_blocks(1);
    return;
  }
  start_run(false);
  body_.append(reinterpret_cast<const char*>(leaf), d);
  run_count_++;
  outer_.add_leaf(leaf);
  added_++;
}

void BlockMapWriter::add_zero_blocks(uint64_t count) {
  if (count > block_count_ - added_)
    throw std::logic_error("BlockMapWriter: more leaves than blocks");
  if (count == 0) return;
  start_run(true);
  run_count_ += count;
  const bool has_short =
      added_ + count == block_count_ && short_zero_leaf_.size() > 0;
  outer_.add_zero_leaves(count - has_short);
  if (has_short) outer_.add_leaf(short_zero_leaf_.data());
  added_ += count;
}

std::string BlockMapWriter::finish() {
  if (added_ != block_count_)
    throw std::logic_error("BlockMapWriter: " + std::to_string(added_) +
                           " of " + std::to_string(block_count_) +
                           " blocks added");
  end_run();
  root_ = outer_.finish(image_size_);
  const std::string& name = parameters_.digest().name();
  std::string out(kBlockMapMagic, sizeof kBlockMapMagic);
  put_u32(out, kBlockMapVersion);
  put_u32(out, parameters_.block_size());
  put_u64(out, image_size_);
  out.push_back(static_cast<char>(name.size()));
  out.push_back(static_cast<char>(parameters_.digest_size()));
  out += name;
  out.append(reinterpret_cast<const char*>(root_.data()), root_.size());
  out += body_;
  return out;
}

}  // namespace blkhash
