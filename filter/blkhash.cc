// nbdkit-blkhash-filter: the nbdkit callbacks.
//
// This file is glue only: it parses parameters (config.cc), keeps one
// ExportState per export name (export_state.cc) and forwards each request
// to it.  The checksum engine lives in common/.
//
// Every callback catches every exception: one escaping into nbdkit would
// kill the server.  A failure becomes nbdkit_error and EIO for the client.
//
// Globals:
// - config, thread_model: written by .config, .config_complete and
//   .get_ready (single-threaded), then read-only.
// - pool and exports: created in .after_fork (threads do not survive
//   nbdkit's fork), destroyed in .unload; Exports guards itself.

#include <cerrno>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include <nbdkit-filter.h>

#include "config.h"
#include "export_state.h"
#include "exports.h"
#include "hash_pool.h"

namespace blkhash::filter {
namespace {

Config config;
int thread_model = NBDKIT_THREAD_MODEL_PARALLEL;
bool configured = false;  // .config_complete ran: the filter is in use
std::unique_ptr<HashPool> pool;
std::unique_ptr<Exports> exports;

// Threads a report reads the plugin with, when the plugin allows it.
constexpr unsigned kParallelReaders = 4;

// A connection's handle.
struct Handle {
  std::shared_ptr<ExportState> state;
  bool attached = false;  // between .prepare and .finalize
};

Handle& handle_of(void* handle) { return *static_cast<Handle*>(handle); }

// Runs a request; any exception becomes nbdkit_error and EIO.
template <typename Request>
int guarded(const char* what, int* err, Request request) {
  try {
    return request();
  } catch (const std::exception& e) {
    nbdkit_error("blkhash: %s: %s", what, e.what());
  } catch (...) {
    nbdkit_error("blkhash: %s: unknown exception", what);
  }
  *err = EIO;
  return -1;
}

// --- Configuration and server lifecycle --------------------------------------

void blkhash_unload() {
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
  try {
    if (config.complete() == -1) return -1;
  } catch (const std::exception& e) {
    nbdkit_error("blkhash: %s", e.what());
    return -1;
  }
  return next(nxdata);
}

int blkhash_get_ready(int model) {
  thread_model = model;
  return 0;
}

int blkhash_after_fork(nbdkit_backend*) {
  try {
    unsigned cores = std::thread::hardware_concurrency();
    pool = std::make_unique<HashPool>(cores > 1 ? cores - 1 : 0);
    unsigned readers =
        thread_model == NBDKIT_THREAD_MODEL_PARALLEL ? kParallelReaders : 1;
    exports = std::make_unique<Exports>(config, pool.get(), readers);
  } catch (const std::exception& e) {
    nbdkit_error("blkhash: cannot start hashing threads: %s", e.what());
    return -1;
  }
  return 0;
}

void blkhash_cleanup(nbdkit_backend* backend) {
  if (!exports) return;  // .after_fork failed: nothing was served
  try {
    // No client ever connected: report the default export, so that
    // "nbdkit --filter=blkhash file disk.img --run true" prints its sum.
    auto all = exports->all();
    if (all.empty()) all.push_back(exports->get(""));
    for (auto& state : all) state->report_at_cleanup(backend);
  } catch (const std::exception& e) {
    nbdkit_error("blkhash: report at shutdown failed: %s", e.what());
  }
}

// --- Connections ---------------------------------------------------------------

void* blkhash_open(nbdkit_next_open* next, nbdkit_context* context,
                   int readonly, const char* exportname, int) {
  if (next(context, readonly, exportname) == -1) return nullptr;
  try {
    auto handle = std::make_unique<Handle>();
    handle->state = exports->get(exportname);
    return handle.release();  // owned by nbdkit until .close
  } catch (const std::exception& e) {
    nbdkit_error("blkhash: open: %s", e.what());
    return nullptr;
  }
}

void blkhash_close(void* handle) {
  std::unique_ptr<Handle> owned(static_cast<Handle*>(handle));
  if (owned->attached) owned->state->abandon();
}

int blkhash_prepare(nbdkit_next* next, void* handle, int) {
  int err = 0;
  return guarded("prepare", &err, [&] {
    Handle& h = handle_of(handle);
    if (h.state->attach(next) == -1) return -1;
    h.attached = true;
    return 0;
  });
}

int blkhash_finalize(nbdkit_next* next, void* handle) {
  int err = 0;
  return guarded("finalize", &err, [&] {
    Handle& h = handle_of(handle);
    if (h.attached) {
      h.attached = false;
      h.state->detach(next);
    }
    return 0;
  });
}

const char* blkhash_export_description(nbdkit_next*, void* handle) {
  try {
    std::string line = handle_of(handle).state->description();
    return nbdkit_strdup_intern(line.c_str());
  } catch (const std::exception& e) {
    nbdkit_error("blkhash: export description: %s", e.what());
    return nullptr;
  }
}

// --- Requests ------------------------------------------------------------------

int blkhash_pread(nbdkit_next* next, void* handle, void* buf, uint32_t count,
                  uint64_t offset, uint32_t flags, int* err) {
  return guarded("pread", err, [&] {
    return handle_of(handle).state->pread(next, buf, count, offset, flags,
                                          err);
  });
}

int blkhash_pwrite(nbdkit_next* next, void* handle, const void* buf,
                   uint32_t count, uint64_t offset, uint32_t flags, int* err) {
  return guarded("pwrite", err, [&] {
    return handle_of(handle).state->pwrite(next, buf, count, offset, flags,
                                           err);
  });
}

int blkhash_zero(nbdkit_next* next, void* handle, uint32_t count,
                 uint64_t offset, uint32_t flags, int* err) {
  return guarded("zero", err, [&] {
    return handle_of(handle).state->zero(next, count, offset, flags, err);
  });
}

int blkhash_trim(nbdkit_next* next, void* handle, uint32_t count,
                 uint64_t offset, uint32_t flags, int* err) {
  return guarded("trim", err, [&] {
    return handle_of(handle).state->trim(next, count, offset, flags, err);
  });
}

int blkhash_extents(nbdkit_next* next, void* handle, uint32_t count,
                    uint64_t offset, uint32_t flags,
                    struct nbdkit_extents* extents, int* err) {
  return guarded("extents", err, [&] {
    return handle_of(handle).state->extents(next, count, offset, flags,
                                            extents, err);
  });
}

int blkhash_flush(nbdkit_next* next, void* handle, uint32_t flags, int* err) {
  return guarded("flush", err, [&] {
    return handle_of(handle).state->flush(next, flags, err);
  });
}

struct nbdkit_filter make_filter() {
  struct nbdkit_filter f = {};
  f.name = "blkhash";
  f.longname = "nbdkit blkhash checksum filter";
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
  f.open = blkhash_open;
  f.close = blkhash_close;
  f.prepare = blkhash_prepare;
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
