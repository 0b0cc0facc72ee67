// The one include of Catch2 for the unit tests: Catch2 v3 (Debian 13 and
// later) splits its header, v2 (Debian 12) has a single one.  Tests
// include this file, never Catch2 directly, and use only what both
// versions have.

#ifndef BLKHASH_TESTS_UNIT_CATCH_H
#define BLKHASH_TESTS_UNIT_CATCH_H

#if __has_include(<catch2/catch_all.hpp>)
#include <catch2/catch_all.hpp>
#else
#include <catch2/catch.hpp>
#endif

#endif  // BLKHASH_TESTS_UNIT_CATCH_H
