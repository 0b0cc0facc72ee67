// See exports.h.

#include "exports.h"

#include <chrono>

namespace blkhash::filter {

Exports::Exports(const Config& config, HashPool* pool, Deferral* deferral,
                 unsigned readers)
    : config_(config),
      pool_(pool),
      deferral_(deferral),
      readers_(readers),
      ranges_(static_cast<uint32_t>(config.block_size)) {}

Exports::~Exports() = default;

std::shared_ptr<ExportState> Exports::get(const std::string& name) {
  std::lock_guard lock(mutex_);
  auto it = states_.find(name);
  if (it != states_.end()) return it->second;
  if (states_.size() >= config_.max_exports)
    throw TooManyExports("export " + quote(name) + ": already tracking " +
                         std::to_string(states_.size()) +
                         " export names with data requests, the limit "
                         "(blkhash-max-exports)");
  auto state = std::make_shared<ExportState>(
      name, config_, pool_, deferral_, readers_, ranges_,
      [this](const ExportState* writer, uint64_t offset, uint64_t length) {
        forget_in_others(writer, offset, length);
      });
  states_.emplace(name, state);
  count_ = states_.size();
  return state;
}

std::shared_ptr<ExportState> Exports::find(const std::string& name) {
  std::lock_guard lock(mutex_);
  auto it = states_.find(name);
  return it == states_.end() ? nullptr : it->second;
}

std::vector<std::shared_ptr<ExportState>> Exports::all() {
  std::lock_guard lock(mutex_);
  std::vector<std::shared_ptr<ExportState>> states;
  for (auto& [name, state] : states_) states.push_back(state);
  return states;
}

std::vector<std::shared_ptr<ExportState>> Exports::all_or_default() {
  auto states = all();
  // No client sent data: the default export stands for the image, so
  // that "nbdkit --filter=blkhash file disk.img --run true" reports it.
  if (states.empty()) states.push_back(get(""));
  return states;
}

int Exports::check(nbdkit_backend* backend) {
  const auto deadline = std::chrono::steady_clock::now() +
                        std::chrono::seconds(config_.check_timeout);
  int result = 0;
  for (auto& state : all_or_default()) {
    Verdict verdict = state->check(backend, deadline);
    if (verdict == Verdict::kMismatch || verdict == Verdict::kIncomplete) {
      nbdkit_error("blkhash: check: export %s: verdict %s",
                   quote(state->name()).c_str(), verdict_name(verdict));
      result = -1;
    }
  }
  return result;
}

void Exports::report_at_cleanup(nbdkit_backend* backend) {
  for (auto& state : all_or_default()) state->report_at_cleanup(backend);
}

void Exports::forget_in_others(const ExportState* writer, uint64_t offset,
                               uint64_t length) {
  // One export (the usual case): nothing to do, and no lock taken on the
  // write path.
  if (count_.load() < 2) return;
  for (auto& state : all())
    if (state.get() != writer) state->forget(offset, length);
}

}  // namespace blkhash::filter
