// State shared by debug.cpp (the debug caches) and debug_report.cpp (their
// reports); not for other files but slab.cpp's hooks.
#pragma once

#include <cstdarg>
#include <cstddef>
#include <cstdint>

#include "lib/slub/debug.h"
#include "lib/slub/slab.h"

namespace numaslub {

inline constexpr unsigned kTrackFrames = 14;

// One allocation or free of an object (U): who, where, when. frames[] ends
// at the first 0.
struct Track {
  std::uint64_t when_ns;  // 0: never
  std::uint32_t tid;
  std::int32_t cpu;
  std::uintptr_t frames[kTrackFrames];
};

enum ObjState : std::uint8_t { kObjFree = 0, kObjLive = 1, kObjQuarantined = 2 };

// A debug slab's out-of-band metadata (one block per slab, recycled).
struct DebugMeta {
  DebugMeta* next;  // in the cache's pool while unused
  std::uint8_t* state;
  std::uint32_t* orig;  // size asked for
  Track* tracks;        // U: [2i] allocation, [2i + 1] free of object i
};

// A debug cache's slab layout (debug.h), beside its KmemCache (which
// keeps only the letters, so that the plain caches' struct is unchanged).
struct DebugLayout {
  std::uint32_t red_left = 0;      // red zone bytes on each side of an object
  std::uint32_t stride = 0;        // bytes per object slot
  std::uint32_t slab_off = 0;      // first slot's offset in the slab
  std::uint32_t fp_off = 0;        // free pointer's offset from the object
  DebugMeta* meta_pool = nullptr;  // recycled metadata of discarded slabs
};
extern DebugLayout g_debug_layout[kNrClasses];
inline DebugLayout& lay(const KmemCache& c) {
  return g_debug_layout[c.cls];
}

// The debug cache operations; a friend of KmemCache (slab.h).
struct SlubDebug {
  static DebugMeta* meta(const Slab* s) {
    return reinterpret_cast<DebugMeta*>(reinterpret_cast<const Page*>(s)[1].priv[0]);
  }
  static char* slab_base(const KmemCache& c, const Slab* s) {
    return static_cast<char*>(c.slab_base(s));
  }
  static char* object(const KmemCache& c, const Slab* s, unsigned i) {
    return slab_base(c, s) + lay(c).slab_off + std::size_t{i} * lay(c).stride + lay(c).red_left;
  }
  static void** fp_word(const KmemCache& c, void* obj) {
    return reinterpret_cast<void**>(static_cast<char*>(obj) + lay(c).fp_off);
  }
  // Index of the object p starts, or -1.
  static long index(const KmemCache& c, const Slab* s, const void* p);

  static void release_meta(KmemCache& c, Slab* s);

  // KmemCache's private parts that the debug caches use.
  static void* encode(const KmemCache& c, const Slab* s, void* ptr, void** where) {
    return c.encode(s, ptr, where);
  }
  static void* decode(const KmemCache& c, const Slab* s, void* stored, void** where) {
    return c.decode(s, stored, where);
  }
  static void discard(KmemCache& c, KmemCacheNode& n, Slab* s) { c.discard_slab(n, s); }
  static KmemCacheNode* list_new(KmemCache& c, Slab* s) { return c.list_new_slab(s); }
};

// The usable size of a debug object asked for with `orig` bytes: malloc(0)
// gets one byte, so that its usable size is not the "not ours" 0.
inline std::size_t debug_usable(std::uint32_t orig) {
  return orig ? orig : 1;
}

// The calling thread's stack without the allocator's own frames (debug.cpp).
unsigned debug_user_stack(std::uintptr_t* out, unsigned max);

// ---- reports (debug_report.cpp) ----------------------------------------
//
// A report is written in the kernel's layout (mm/slub.c, slab_bug and
// print_trailer): the BUG line, INFO lines, the object's tracks, a hexdump
// of its slot, FIX lines for what was repaired. Reports are serialised by
// a lock and go to stderr or to debug_log. End with done(), which aborts
// unless debug_continue is set (or the report comes from validation).
class DebugReport {
 public:
  DebugReport(const KmemCache& c, const char* fmt, ...) __attribute__((format(printf, 3, 4)));
  // A report on something that is not a cache's (`what`: "large block").
  DebugReport(const char* what, const char* fmt, ...) __attribute__((format(printf, 3, 4)));
  DebugReport(const DebugReport&) = delete;
  DebugReport& operator=(const DebugReport&) = delete;

  void line(const char* fmt, ...) __attribute__((format(printf, 2, 3)));
  // "INFO: 0xA-0xB @offset=N. First byte 0xX instead of 0xY" for the bytes
  // [from, to) that should all hold `want`; offset from `slot`.
  void mismatch(const void* slot, const std::uint8_t* from, const std::uint8_t* to,
                std::uint8_t want);
  // The slab and object lines, the object's tracks and a hexdump of its slot.
  void object(const Slab* s, unsigned idx);
  void slab(const Slab* s);
  void hexdump(const char* label, const void* p, std::size_t n);
  // Ends the report: aborts unless going on is allowed.
  void done();

 private:
  void begin(const char* name, const char* fmt, std::va_list ap);
  void flush();
  void track(const char* what, const Track& t);
  const KmemCache* c_;
  char buf_[2048];
  std::size_t len_ = 0;
};

// Whether reports abort (false while validating, or with debug_continue).
bool debug_reports_fatal();
// Validation reports and goes on whatever debug_continue says.
void debug_set_validating(bool on);
// In a fork child: frees the report lock if a dead thread held it.
void debug_report_fork_child(std::uint32_t self);

}  // namespace numaslub
