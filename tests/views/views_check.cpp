// Reads a target's published views as fast as it can while the target
// churns, and checks every snapshot it gets (views.sh, case "consistent"):
//
//   views_check DIR PID MIN_SEQS
//
// Each snapshot must carry a good checksum and pass check_snapshot (zone
// free pages = the sum over orders, per-CPU pages = the sum over CPUs,
// cache totals = the sums of their node parts), and seq must never go
// back. It stops once it has seen MIN_SEQS different snapshots and read at
// least 2000 times; exit 0 then, 1 on any bad snapshot, 2 when the target
// published fewer than MIN_SEQS snapshots within 120 s (a liveness bound,
// not a timing assertion).
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <vector>

#include "lib/views/reader.h"

using namespace numaslub;

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: views_check DIR PID MIN_SEQS\n");
    return 2;
  }
  const char* dir = argv[1];
  int pid = std::atoi(argv[2]);
  unsigned long min_seqs = std::strtoul(argv[3], nullptr, 10);
  pub::Target t;
  if (int e = pub::target_open(dir, pid, &t)) {
    std::fprintf(stderr, "views_check: %s/%d: %s\n", dir, pid, std::strerror(e));
    return 1;
  }
  std::vector<char> buf(pub::snapshot_bytes(t));
  std::uint64_t last = 0, distinct = 0, reads = 0, retried = 0;
  std::time_t start = std::time(nullptr);
  while (distinct < min_seqs || reads < 2000) {
    if (std::time(nullptr) - start > 120) {
      std::fprintf(stderr, "views_check: only %lu snapshots in 120 s\n",
                   static_cast<unsigned long>(distinct));
      return 2;
    }
    if (reads % 64 == 0) pub::request_snapshot(t);
    pub::Snapshot s;
    int e = pub::read_snapshot(t, buf.data(), buf.size(), &s);
    if (e == EAGAIN) {  // the writer kept overtaking us: not a bad snapshot
      ++retried;
      continue;
    }
    if (e) {
      std::fprintf(stderr, "views_check: read %lu: %s\n", static_cast<unsigned long>(reads),
                   std::strerror(e));
      return 1;
    }
    ++reads;
    char why[256];
    if (!pub::check_snapshot(s, why, sizeof why)) {
      std::fprintf(stderr, "views_check: snapshot %lu: %s\n",
                   static_cast<unsigned long>(s.head->seq), why);
      return 1;
    }
    if (s.head->seq < last) {
      std::fprintf(stderr, "views_check: seq went back from %lu to %lu\n",
                   static_cast<unsigned long>(last), static_cast<unsigned long>(s.head->seq));
      return 1;
    }
    if (s.head->seq != last) ++distinct;
    last = s.head->seq;
  }
  std::printf("views_check: %lu reads, %lu snapshots, %lu reads retried, all consistent\n",
              static_cast<unsigned long>(reads), static_cast<unsigned long>(distinct),
              static_cast<unsigned long>(retried));
  pub::target_close(&t);
  return 0;
}
