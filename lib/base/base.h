// lib/base: the bottom layer. Raw system calls, locks, lists, bit operations,
// formatting and logging over write(2), configuration, the metadata bump
// allocator, sysfs parsing and rseq. Nothing here calls libc malloc.
#pragma once

#include "lib/base/bitops.h"
#include "lib/base/boot_alloc.h"
#include "lib/base/clock.h"
#include "lib/base/compiler.h"
#include "lib/base/config.h"
#include "lib/base/format.h"
#include "lib/base/list.h"
#include "lib/base/lock.h"
#include "lib/base/log.h"
#include "lib/base/raw_thread.h"
#include "lib/base/rseq.h"
#include "lib/base/stack_trace.h"
#include "lib/base/stat.h"
#include "lib/base/syscall.h"
#include "lib/base/sysfs.h"
#include "lib/base/thread_ctx.h"
#include "lib/base/vdso.h"
#include "lib/base/views_hook.h"
