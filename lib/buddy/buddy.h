// lib/buddy: zones with buddy free lists, per-CPU page lists, the page
// allocator with node fallback, and the buddyinfo/zoneinfo views.
#pragma once

#include "lib/buddy/page_alloc.h"
#include "lib/buddy/pcp.h"
#include "lib/buddy/zone.h"
