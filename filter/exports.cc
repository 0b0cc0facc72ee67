// See exports.h.

#include "exports.h"

#include "export_state.h"

namespace blkhash::filter {

Exports::Exports(const Config& config, HashPool* pool, unsigned readers)
    : config_(config),
      pool_(pool),
      readers_(readers),
      ranges_(config.parameters->block_size()) {}

Exports::~Exports() = default;

std::shared_ptr<ExportState> Exports::get(const std::string& name) {
  std::lock_guard lock(mutex_);
  auto& state = states_[name];
  if (!state) {
    state = std::make_shared<ExportState>(name, config_, pool_, readers_, *this);
    count_ = states_.size();
  }
  return state;
}

std::vector<std::shared_ptr<ExportState>> Exports::all() {
  std::lock_guard lock(mutex_);
  std::vector<std::shared_ptr<ExportState>> states;
  for (auto& [name, state] : states_) states.push_back(state);
  return states;
}

void Exports::forget_in_others(const ExportState* writer, uint64_t offset,
                               uint64_t length) {
  // One export (the usual case): nothing to do, and no lock taken on the
  // write path.
  if (count_.load() < 2) return;
  std::vector<std::shared_ptr<ExportState>> others;
  {
    std::lock_guard lock(mutex_);
    for (auto& [name, state] : states_)
      if (state.get() != writer) others.push_back(state);
  }
  for (auto& state : others) state->forget(offset, length);
}

}  // namespace blkhash::filter
