// prodcons: N producer threads allocate objects (operator new[]) and pass them
// in batches through a bounded queue to M consumer threads, which check and
// delete them. Every object is freed by a thread other than the one that
// allocated it: the remote-free path of the allocator under test.
//
//   prodcons [-t threads | -p producers -c consumers] [-n items/producer]
//            [-s min] [-S max] [-b batch] [-q queue batches] [-L limit_s]
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include "wl_args.h"

namespace {

struct Batch {
  std::vector<std::pair<char*, uint32_t>> items;
};

struct Queue {
  std::mutex mu;
  std::condition_variable not_empty, not_full;
  std::deque<Batch*> q;
  size_t cap = 64;
  int producers_left = 0;

  void push(Batch* b) {
    std::unique_lock<std::mutex> l(mu);
    not_full.wait(l, [&] { return q.size() < cap; });
    q.push_back(b);
    not_empty.notify_one();
  }
  void producer_done() {
    std::lock_guard<std::mutex> l(mu);
    if (--producers_left == 0) not_empty.notify_all();
  }
  Batch* pop() {
    std::unique_lock<std::mutex> l(mu);
    not_empty.wait(l, [&] { return !q.empty() || producers_left == 0; });
    if (q.empty()) return nullptr;
    Batch* b = q.front();
    q.pop_front();
    not_full.notify_one();
    return b;
  }
};

Queue g_q;
long g_items = 200000;
uint64_t g_min = 16, g_max = 512;
size_t g_batch = 64;

uint64_t stamp_of(uint64_t producer, uint64_t seq) {
  return (producer << 40) ^ (seq * 2654435761u);
}

void producer(int id) {
  wl_rng r;
  wl_seed(&r, 500 + (uint64_t)id);
  Batch* b = nullptr;
  for (long i = 0; i < g_items; i++) {
    if (!b) {
      b = new Batch;
      b->items.reserve(g_batch);
    }
    uint32_t size = (uint32_t)wl_range(&r, g_min, g_max);
    char* p = new char[size];
    uint64_t st = stamp_of((uint64_t)id, (uint64_t)i);
    memcpy(p, &st, sizeof st);
    p[size - 1] = (char)st;
    b->items.emplace_back(p, size);
    if (b->items.size() == g_batch) {
      g_q.push(b);
      b = nullptr;
    }
  }
  if (b) g_q.push(b);
  g_q.producer_done();
}

void consumer(uint64_t* out) {
  uint64_t sum = 0;
  while (Batch* b = g_q.pop()) {
    for (auto& it : b->items) {
      uint64_t st;
      memcpy(&st, it.first, sizeof st);
      if ((uint8_t)it.first[it.second - 1] != (uint8_t)st) wl_corrupt("prodcons", it.first, st, 0);
      sum += wl_mix(st, it.second);
      delete[] it.first;
    }
    delete b;
  }
  *out = sum;
}

}  // namespace

int main(int argc, char** argv) {
  int threads = 2, np = 0, nc = 0;
  long batch = (long)g_batch, cap = (long)g_q.cap;
  const wl_opt opts[] = {{'t', WL_INT, &threads, "threads"}, {'p', WL_INT, &np, "producers"},
                         {'c', WL_INT, &nc, "consumers"},    {'n', WL_LONG, &g_items, "items"},
                         {'s', WL_SIZE, &g_min, "min"},      {'S', WL_SIZE, &g_max, "max"},
                         {'b', WL_LONG, &batch, "batch"},    {'q', WL_LONG, &cap, "queue_batches"}};
  wl_parse_args(argc, argv, "prodcons", opts, WL_NOPTS(opts));
  if (batch < 1 || cap < 1) wl_die("bad arguments");
  g_batch = (size_t)batch;
  g_q.cap = (size_t)cap;
  if (np <= 0) np = threads / 2 > 0 ? threads / 2 : 1;
  if (nc <= 0) nc = threads - np > 0 ? threads - np : 1;
  if (g_min < 8 || g_max < g_min || g_max > UINT32_MAX || g_batch < 1) wl_die("bad arguments");
  g_q.producers_left = np;
  std::vector<uint64_t> sums((size_t)nc);
  std::vector<std::thread> th;

  double t0 = wl_now();
  for (int i = 0; i < nc; i++) th.emplace_back(consumer, &sums[(size_t)i]);
  for (int i = 0; i < np; i++) th.emplace_back(producer, i);
  for (auto& t : th) t.join();
  double el = wl_now() - t0;

  uint64_t sum = 0;
  for (uint64_t s : sums) sum += s;
  char extra[128];
  snprintf(extra, sizeof extra, "producers=%d consumers=%d ops=%lld", np, nc,
           (long long)np * (long long)g_items);
  wl_report("prodcons", np + nc, el, sum, extra);
  return 0;
}
