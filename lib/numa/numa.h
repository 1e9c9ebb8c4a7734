// lib/numa: topology (real or fake nodes), the platform's address-space
// contract, page descriptors, and the per-node arenas built on them.
#pragma once

#include "lib/numa/arena.h"
#include "lib/numa/os_mem.h"
#include "lib/numa/page.h"
#include "lib/numa/topology.h"
