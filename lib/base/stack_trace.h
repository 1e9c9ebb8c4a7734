// Call stacks without allocating, for slub_debug's owner tracking (U) and
// reports. Nothing here takes a lock or calls libc beyond raw system calls.
//
// How a stack is walked:
// - Frames whose code lies in this library's own module (the shared object,
//   or the program it is linked into) are unwound with the module's own
//   DWARF call-frame information (.eh_frame_hdr, .eh_frame): exact, with or
//   without frame pointers, so the library's frameless fast paths do not
//   hide the caller.
// - Past the module, frame pointers are followed; code built without them
//   ends the walk there (or, rarely, adds a wrong frame: a frame pointer
//   register that holds some other stack address).
// Safety: every stack word read lies between the walk's starting stack
// pointer and the top of the thread's stack mapping, found once per thread
// in /proc/self/maps (and again when the stack pointer leaves that
// mapping: another stack, a grown main stack). Frame pointers must grow
// strictly. The call-frame information read is the module's own, mapped
// read-only for as long as the code runs. Without /proc only the library's
// own frames are walked (their CFA rules are exact), ending at the first
// frame outside it.
#pragma once

#include <cstddef>
#include <cstdint>

namespace numaslub {

// Return addresses of the calling thread's stack: out[0] is where the
// function calling stack_trace_capture will return to, out[1] its caller's,
// and so on; `skip` more are dropped first. fn (optional) gets the start of
// each frame's function where the call-frame information knows it (0
// otherwise). Returns the number stored (at most max).
unsigned stack_trace_capture(std::uintptr_t* out, unsigned max, unsigned skip,
                             std::uintptr_t* fn = nullptr);

// Whether pc is code of this library's module and that module is a shared
// object (not the program): such frames are the allocator's own.
bool stack_trace_in_library(std::uintptr_t pc);

// Writes "0x55d1c0a1b2c3 (/usr/bin/prog+0x1b2c3)" (the file from
// /proc/self/maps, the offset as addr2line takes it) or just the address.
// Returns the length written; buf is always NUL-terminated.
std::size_t stack_trace_describe(std::uintptr_t pc, char* buf, std::size_t cap);

}  // namespace numaslub
