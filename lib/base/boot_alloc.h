// The allocator's own metadata allocator, the kernel's memblock: a bump
// allocator over raw anonymous mappings. Node, zone and per-CPU structures are
// carved from it once at start-up and live for the whole process; nothing is
// ever freed. Returned memory is zeroed (fresh anonymous pages) and aligned to
// at least a cache line.
#pragma once

#include <cstddef>
#include <cstdint>

namespace numaslub {

// Returns zeroed memory, or nullptr when the OS refuses (ENOMEM).
void* boot_alloc(std::size_t size, std::size_t align = 64);

// Its lock is a leaf: nothing else is taken under it.
// In a fork child (`self`: the forking thread's id in the parent): frees
// the lock if a thread that did not survive the fork held it.
void boot_alloc_fork_child(std::uint32_t self);

// Bytes handed out so far (for the stats views).
std::size_t boot_alloc_bytes();

// Tests: after the next `skip` calls, n calls of boot_alloc fail as if the
// OS refused (n = 0 ends that), so that the layers' handling of a metadata
// failure can be shown at each point it can happen.
void boot_alloc_fail_for_test(unsigned skip, unsigned n);

}  // namespace numaslub
