/* One XXH3-128 kernel, compiled once per instruction set.
 *
 * meson builds this file several times, each with other -m flags and a
 * different XXH3_KERNEL_NAME; xxHash's headers pick their vector code
 * (SSE2, AVX2, AVX-512) from the flags the compiler was given.  digest.cc
 * calls the best kernel the CPU supports.  All of them compute the same
 * function, bit for bit; only the speed differs.
 *
 * Keep this a C file with nothing but xxHash in it: see common/meson.build.
 */

#include <stddef.h>
#include <string.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#ifndef XXH3_KERNEL_NAME
#error "XXH3_KERNEL_NAME must be defined by the build"
#endif

/* Writes the canonical (big-endian) 16-byte XXH3-128 digest of data. */
void XXH3_KERNEL_NAME (const void *data, size_t len, unsigned char *out);

void
XXH3_KERNEL_NAME (const void *data, size_t len, unsigned char *out)
{
  XXH128_canonical_t canonical;

  XXH128_canonicalFromHash (&canonical, XXH3_128bits (data, len));
  memcpy (out, canonical.digest, sizeof canonical.digest);
}
