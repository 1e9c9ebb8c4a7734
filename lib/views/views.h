// lib/views: the heap's views published for other processes (publish.h,
// in the allocator) and read from them (reader.h, render.h: the
// numaslub_reader library of the tools and tests).
#pragma once

#include "lib/views/publish.h"
#include "lib/views/reader.h"
#include "lib/views/render.h"
#include "lib/views/snapshot.h"
