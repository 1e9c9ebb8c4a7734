// Reading small kernel text files (sysfs, procfs) into stack buffers, and
// parsing the kernel's list formats, without allocating.
#pragma once

#include <cstddef>
#include <cstdint>

#include "lib/base/bitops.h"

namespace numaslub {

inline constexpr unsigned kMaxCpus = 1024;
inline constexpr unsigned kMaxNodes = 64;
using CpuMask = Bitmap<kMaxCpus>;
using NodeMask = Bitmap<kMaxNodes>;

// Reads up to cap-1 bytes of path into buf and NUL-terminates. Returns the
// length, or -1 when the file cannot be read.
long read_text_file(const char* path, char* buf, std::size_t cap);

// Parses a cpulist ("0-3,8,10-11\n") into mask. Returns false on bad syntax.
template <unsigned N>
bool parse_list(const char* s, Bitmap<N>* mask);

// Parses whitespace-separated unsigned numbers; returns how many were read.
unsigned parse_numbers(const char* s, std::uint32_t* out, unsigned max);

// The value of "Key:  <n> kB" style lines (e.g. VmSize in /proc/self/status).
bool find_kb_field(const char* text, const char* key, std::uint64_t* kb);

}  // namespace numaslub
