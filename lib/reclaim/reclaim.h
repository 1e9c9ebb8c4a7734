// lib/reclaim: the kswapd threads (decay, watermarks, idle per-CPU caches,
// pressure) that return memory to the OS without the application asking.
#pragma once

#include "lib/reclaim/kswapd.h"
#include "lib/reclaim/pressure.h"
