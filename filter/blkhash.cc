// nbdkit-blkhash-filter: the nbdkit callbacks.
//
// This file is glue only: it parses parameters (config.cc), forwards each
// data request to the ExportState of its export name (export_state.cc),
// created at a connection's first data request (exports.cc), and answers
// NBD_OPT_LIST (nbdinfo --list) with the verdict (Exports::check).  The
// checksum engine lives in common/.
//
// Every callback catches every exception: one escaping into nbdkit would
// kill the server.  A failure becomes nbdkit_error and EIO for the client
// (guarded()), or the callback's own failure value.
//
// Globals:
// - config, thread_model: written by .config, .config_complete and
//   .get_ready (single-threaded), then read-only.
// - pool and exports: created in .after_fork (threads do not survive
//   nbdkit's fork), destroyed in .unload; Exports guards itself.

#include <cerrno>
#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include <nbdkit-filter.h>

#include "config.h"
#include "deferral.h"
#include "export_state.h"
#include "exports.h"
#include "hash_pool.h"
#include "interrupt.h"
#include "log.h"

namespace blkhash::filter {
namespace {

Config config;
int thread_model = NBDKIT_THREAD_MODEL_PARALLEL;
bool configured = false;  // .config_complete ran: the filter is in use
std::unique_ptr<HashPool> pool;
std::unique_ptr<Deferral> deferral;  // blkhash-defer
std::unique_ptr<Exports> exports;

// Threads a report reads the plugin with, when the plugin allows it.
constexpr unsigned kParallelReaders = 4;

// A connection's handle.  Requests of one connection may run on several
// threads at once: the first data request attaches under `mutex`, the
// others see `attached` set.
struct Handle {
  std::string export_name;
  std::mutex mutex;  // guards state, and attaching
  std::shared_ptr<ExportState> state;
  // state.get() from the first data request on, until .finalize.
  std::atomic<ExportState*> attached{nullptr};
};

Handle& handle_of(void* handle) { return *static_cast<Handle*>(handle); }

// Runs a callback; any exception becomes nbdkit_error, *err = EIO (if
// err is given) and `failed`.
template <typename Result, typename Callback>
Result guarded(const char* what, int* err, Result failed, Callback callback) {
  try {
    return callback();
  } catch (const std::exception& e) {
    nbdkit_error("blkhash: %s: %s", what, e.what());
  } catch (...) {
    nbdkit_error("blkhash: %s: unknown exception", what);
  }
  if (err) *err = EIO;
  return failed;
}

// The export state of a data request, attaching the connection at its
// first one.  Null with *err = EIO after nbdkit_error.
ExportState* attached_state(nbdkit_next* next, Handle& h, int* err) {
  if (ExportState* state = h.attached.load(std::memory_order_acquire))
    return state;
  std::lock_guard lock(h.mutex);
  if (ExportState* state = h.attached.load()) return state;
  try {
    if (!h.state) h.state = exports->get(h.export_name);
  } catch (const TooManyExports& e) {
    nbdkit_error("blkhash: %s", e.what());
    *err = EIO;
    return nullptr;
  }
  if (h.state->attach(next) == -1) {
    *err = EIO;
    return nullptr;
  }
  h.attached.store(h.state.get(), std::memory_order_release);
  return h.state.get();
}

// Runs a data request on the connection's export state.
template <typename Request>
int data_request(const char* what, nbdkit_next* next, void* handle, int* err,
                 Request request) {
  return guarded(what, err, -1, [&] {
    ExportState* state = attached_state(next, handle_of(handle), err);
    if (!state) return -1;
    int r = request(*state);
    state->after_request(next);
    return r;
  });
}

// --- Configuration and server lifecycle --------------------------------------

void blkhash_unload() {
  deferral.reset();  // records what is queued, joins its threads
  exports.reset();
  pool.reset();  // joins the hashing threads
}

int blkhash_config(nbdkit_next_config* next, nbdkit_backend* nxdata,
                   const char* key, const char* value) {
  int r = config.parse(key, value);
  if (r == -1) return -1;
  if (r == 1) return 0;
  return next(nxdata, key, value);
}

int blkhash_config_complete(nbdkit_next_config_complete* next,
                            nbdkit_backend* nxdata) {
  // One shared library, one set of globals: a second blkhash in the same
  // stack would share the first one's state and deadlock on its locks.
  if (configured) {
    nbdkit_error("blkhash: the filter can appear only once in a stack");
    return -1;
  }
  configured = true;
  if (guarded("config", nullptr, -1, [] { return config.complete(); }) == -1)
    return -1;
  return next(nxdata);
}

int blkhash_get_ready(int model) {
  thread_model = model;
  init_log();
  return 0;
}

int blkhash_after_fork(nbdkit_backend*) {
  note_fork();
  install_interrupt_handlers();
  try {
    unsigned cores = std::thread::hardware_concurrency();
    pool = std::make_unique<HashPool>(cores > 1 ? cores - 1 : 0);
    unsigned readers =
        thread_model == NBDKIT_THREAD_MODEL_PARALLEL ? kParallelReaders : 1;
    deferral = std::make_unique<Deferral>(config.defer, cores > 1 ? cores - 1 : 1,
                                          config.defer_memory);
    exports = std::make_unique<Exports>(config, pool.get(), deferral.get(),
                                        readers);
  } catch (const std::exception& e) {
    nbdkit_error("blkhash: cannot start hashing threads: %s", e.what());
    return -1;
  }
  return 0;
}

void blkhash_cleanup(nbdkit_backend* backend) {
  if (!exports) return;  // .after_fork failed: nothing was served
  guarded("report at shutdown", nullptr, 0, [&] {
    exports->report_at_cleanup(backend);
    return 0;
  });
}

// The plugin's exports, each with its latest report line as the
// description when the filter tracks it (what nbdinfo --list shows).
int list_with_reports(nbdkit_next_list_exports* next, nbdkit_backend* nxdata,
                      int readonly, struct nbdkit_exports* list) {
  std::unique_ptr<struct nbdkit_exports, decltype(&nbdkit_exports_free)>
      plugin(nbdkit_exports_new(), nbdkit_exports_free);
  if (!plugin || next(nxdata, readonly, plugin.get()) == -1) return -1;
  for (size_t i = 0; i < nbdkit_exports_count(plugin.get()); i++) {
    struct nbdkit_export e = nbdkit_get_export(plugin.get(), i);
    std::string line;
    if (auto state = exports->find(e.name ? e.name : "")) line = state->description();
    if (nbdkit_add_export(list, e.name,
                          line.empty() ? e.description : line.c_str()) == -1)
      return -1;
  }
  return 0;
}

int blkhash_list_exports(nbdkit_next_list_exports* next,
                         nbdkit_backend* nxdata, int readonly, int,
                         struct nbdkit_exports* list) {
  // NBD_OPT_LIST is how a client asks for the verdict (nbdinfo --list):
  // it fails unless every export matches (or was computed).
  return guarded("check", nullptr, -1, [&] {
    if (exports->check(nxdata) == -1) return -1;
    return list_with_reports(next, nxdata, readonly, list);
  });
}

// --- Connections ---------------------------------------------------------------

void* blkhash_open(nbdkit_next_open* next, nbdkit_context* context,
                   int readonly, const char* exportname, int) {
  if (next(context, readonly, exportname) == -1) return nullptr;
  return guarded("open", nullptr, static_cast<void*>(nullptr), [&] {
    auto handle = std::make_unique<Handle>();
    handle->export_name = exportname;
    return static_cast<void*>(handle.release());  // nbdkit's until .close
  });
}

void blkhash_close(void* handle) {
  std::unique_ptr<Handle> owned(static_cast<Handle*>(handle));
  // .finalize is skipped for connections still open at shutdown.
  if (owned->attached.load()) owned->state->abandon();
}

int blkhash_finalize(nbdkit_next* next, void* handle) {
  return guarded("finalize", nullptr, -1, [&] {
    Handle& h = handle_of(handle);
    if (ExportState* state = h.attached.exchange(nullptr)) state->detach(next);
    return 0;
  });
}

const char* blkhash_export_description(nbdkit_next* next, void* handle) {
  return guarded("export description", nullptr,
                 static_cast<const char*>(nullptr), [&] {
    const std::string& name = handle_of(handle).export_name;
    std::string line;
    if (auto state = exports->find(name)) {
      line = state->description();
    } else {
      int64_t size = next->get_size(next);
      line = pending_line(config.label(), name,
                          size == -1 ? 0 : static_cast<uint64_t>(size));
    }
    return nbdkit_strdup_intern(line.c_str());
  });
}

// --- Requests ------------------------------------------------------------------

int blkhash_pread(nbdkit_next* next, void* handle, void* buf, uint32_t count,
                  uint64_t offset, uint32_t flags, int* err) {
  return data_request("pread", next, handle, err, [&](ExportState& state) {
    return state.pread(next, buf, count, offset, flags, err);
  });
}

int blkhash_pwrite(nbdkit_next* next, void* handle, const void* buf,
                   uint32_t count, uint64_t offset, uint32_t flags, int* err) {
  return data_request("pwrite", next, handle, err, [&](ExportState& state) {
    return state.pwrite(next, buf, count, offset, flags, err);
  });
}

int blkhash_zero(nbdkit_next* next, void* handle, uint32_t count,
                 uint64_t offset, uint32_t flags, int* err) {
  return data_request("zero", next, handle, err, [&](ExportState& state) {
    return state.zero(next, count, offset, flags, err);
  });
}

int blkhash_trim(nbdkit_next* next, void* handle, uint32_t count,
                 uint64_t offset, uint32_t flags, int* err) {
  return data_request("trim", next, handle, err, [&](ExportState& state) {
    return state.trim(next, count, offset, flags, err);
  });
}

int blkhash_extents(nbdkit_next* next, void* handle, uint32_t count,
                    uint64_t offset, uint32_t flags,
                    struct nbdkit_extents* extents, int* err) {
  return data_request("extents", next, handle, err, [&](ExportState& state) {
    return state.extents(next, count, offset, flags, extents, err);
  });
}

int blkhash_flush(nbdkit_next* next, void* handle, uint32_t flags, int* err) {
  // Not a data request: a connection that only flushes attaches nothing.
  ExportState* state = handle_of(handle).attached.load();
  if (!state) return next->flush(next, flags, err);
  return guarded("flush", err, -1,
                 [&] { return state->flush(next, flags, err); });
}

struct nbdkit_filter make_filter() {
  struct nbdkit_filter f = {};
  f.name = "blkhash";
  f.longname = "nbdkit blkhash checksum filter " BLKHASH_VERSION;
  f.description =
      "Computes the blkhash checksum of the export as clients read and "
      "write it.";
  f.unload = blkhash_unload;
  f.config = blkhash_config;
  f.config_complete = blkhash_config_complete;
  f.config_help = BLKHASH_CONFIG_HELP;
  f.get_ready = blkhash_get_ready;
  f.after_fork = blkhash_after_fork;
  f.cleanup = blkhash_cleanup;
  f.list_exports = blkhash_list_exports;
  f.open = blkhash_open;
  f.close = blkhash_close;
  f.finalize = blkhash_finalize;
  f.export_description = blkhash_export_description;
  f.pread = blkhash_pread;
  f.pwrite = blkhash_pwrite;
  f.flush = blkhash_flush;
  f.zero = blkhash_zero;
  f.trim = blkhash_trim;
  f.extents = blkhash_extents;
  return f;
}

struct nbdkit_filter filter = make_filter();

}  // namespace
}  // namespace blkhash::filter

NBDKIT_REGISTER_FILTER(blkhash::filter::filter)
