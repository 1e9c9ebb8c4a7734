#include "lib/base/vdso.h"

#include <elf.h>
#include <sys/auxv.h>

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "lib/base/compiler.h"

namespace numaslub {
namespace {

// Plain loops, not libc's: a static binary may call malloc before its
// IFUNC'd string functions are relocated.
bool same_bytes(const unsigned char* a, const unsigned char* b, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i)
    if (a[i] != b[i]) return false;
  return true;
}

// s: within [strs, strs + n); true when it reads `name` and its terminator
// before the table ends.
bool same_name(const char* s, std::size_t room, const char* name) {
  std::size_t i = 0;
  for (; i < room && name[i]; ++i)
    if (s[i] != name[i]) return false;
  return i < room && s[i] == '\0';
}

// The image is mapped whole (the kernel maps the vDSO file, section headers
// included), so the dynamic symbol table is found from the section headers:
// no DT_HASH / DT_GNU_HASH needed to count the symbols. Addresses in it are
// link-time ones; the load bias is the header's address minus the vaddr of
// the segment that maps file offset 0.
void* lookup(const Elf64_Ehdr* eh, const char* name) {
  auto* base = reinterpret_cast<const char*>(eh);
  if (!same_bytes(eh->e_ident, reinterpret_cast<const unsigned char*>(ELFMAG), SELFMAG) ||
      eh->e_ident[EI_CLASS] != ELFCLASS64 || eh->e_shentsize != sizeof(Elf64_Shdr) ||
      eh->e_phentsize != sizeof(Elf64_Phdr))
    return nullptr;
  std::uintptr_t bias = 0;
  bool have_load = false;
  auto* ph = reinterpret_cast<const Elf64_Phdr*>(base + eh->e_phoff);
  for (unsigned i = 0; i < eh->e_phnum; ++i)
    if (ph[i].p_type == PT_LOAD && ph[i].p_offset == 0) {
      bias = reinterpret_cast<std::uintptr_t>(eh) - ph[i].p_vaddr;
      have_load = true;
      break;
    }
  if (!have_load) return nullptr;
  auto* sh = reinterpret_cast<const Elf64_Shdr*>(base + eh->e_shoff);
  for (unsigned i = 0; i < eh->e_shnum; ++i) {
    if (sh[i].sh_type != SHT_DYNSYM || sh[i].sh_entsize != sizeof(Elf64_Sym) ||
        sh[i].sh_link >= eh->e_shnum)
      continue;
    auto* syms = reinterpret_cast<const Elf64_Sym*>(base + sh[i].sh_offset);
    const char* strs = base + sh[sh[i].sh_link].sh_offset;
    std::size_t nstr = sh[sh[i].sh_link].sh_size;
    for (std::size_t k = 0; k < sh[i].sh_size / sizeof(Elf64_Sym); ++k) {
      const Elf64_Sym& s = syms[k];
      if (s.st_shndx == SHN_UNDEF || ELF64_ST_TYPE(s.st_info) != STT_FUNC || s.st_name >= nstr)
        continue;
      if (same_name(strs + s.st_name, nstr - s.st_name, name))
        return reinterpret_cast<void*>(bias + s.st_value);
    }
  }
  return nullptr;
}

// 0: not looked up yet; 1: looked up, none; else the function.
constinit std::atomic<std::uintptr_t> g_getcpu{0};

}  // namespace

void* vdso_lookup(const void* base, const char* name) {
  return base ? lookup(static_cast<const Elf64_Ehdr*>(base), name) : nullptr;
}

VdsoGetcpuFn vdso_getcpu() {
  std::uintptr_t f = g_getcpu.load(std::memory_order_acquire);
  if (NS_UNLIKELY(f == 0)) {
    // Racing threads find the same address: whichever store wins is right.
    const void* eh = reinterpret_cast<const void*>(getauxval(AT_SYSINFO_EHDR));
    // x86-64, riscv64, loongarch: __vdso_getcpu; powerpc64, s390x:
    // __kernel_getcpu; arm64 has none.
    void* fn = vdso_lookup(eh, "__vdso_getcpu");
    if (!fn) fn = vdso_lookup(eh, "__kernel_getcpu");
    f = fn ? reinterpret_cast<std::uintptr_t>(fn) : 1;
    g_getcpu.store(f, std::memory_order_release);
  }
  return f == 1 ? nullptr : reinterpret_cast<VdsoGetcpuFn>(f);
}

}  // namespace numaslub
