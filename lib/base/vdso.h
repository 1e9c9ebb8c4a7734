// Symbols of the vDSO, the kernel's shared object mapped into every process
// (AT_SYSINFO_EHDR), found without libc's dynamic loader and without
// allocating: for the CPU number where no rseq area gives it.
#pragma once

namespace numaslub {

// The vDSO's getcpu (x86-64: __vdso_getcpu), or null where the vDSO has none
// (aarch64) or there is no vDSO (valgrind hides it). Looked up once; safe
// from any context, before libc's own set-up included (it reads only the
// auxiliary vector and the mapped image).
using VdsoGetcpuFn = long (*)(unsigned* cpu, unsigned* node, void* unused);
VdsoGetcpuFn vdso_getcpu();

// The lookup itself: `name`'s address in the ELF image at `base` (the
// vDSO's header), or null. Exposed for tests.
void* vdso_lookup(const void* base, const char* name);

}  // namespace numaslub
