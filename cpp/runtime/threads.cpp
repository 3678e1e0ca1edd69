#include "runtime/threads.h"

#include <algorithm>
#include <atomic>

#ifdef RNNKIT_OPENMP
#include <omp.h>
#endif

namespace rnnkit {

namespace {
// 0 means "not set by the user": follow OpenMP's own default (OMP_NUM_THREADS or core count).
std::atomic<int> g_num_threads{0};
// limit_calling_thread's cap for this thread (0: none).
thread_local int t_thread_cap = 0;

// Below this many FLOPs between barriers a second thread does not pay for its synchronisation.
// A barrier costs ~1 µs on an idle machine, where one core does 100-250 kFLOP; but on a shared
// machine a waiting thread can lose its core for a whole scheduler slice (milliseconds), so a
// barrier must guard at least ~10 µs of work per thread to be worth the risk.
constexpr double kMinFlopsPerThread = 2e6;
}  // namespace

void set_num_threads(int n) { g_num_threads.store(std::max(1, n)); }

int get_num_threads() {
  int n = g_num_threads.load();
  if (n <= 0) {
#ifdef RNNKIT_OPENMP
    n = std::max(1, omp_get_max_threads());
#else
    n = 1;
#endif
  }
  return t_thread_cap > 0 ? std::min(n, t_thread_cap) : n;
}

int limit_calling_thread(int n) {
  const int before = t_thread_cap;
  t_thread_cap = std::max(0, n);
  return before;
}

int threads_for(double flops_per_sync, int64_t max_parts) {
  int n = get_num_threads();
  const double by_work = flops_per_sync / kMinFlopsPerThread;
  if (by_work < n) n = std::max(1, static_cast<int>(by_work));
  if (max_parts < n) n = static_cast<int>(std::max<int64_t>(1, max_parts));
  return n;
}

bool openmp_enabled() {
#ifdef RNNKIT_OPENMP
  return true;
#else
  return false;
#endif
}

void split_range(int64_t n, int parts, int index, int64_t align, int64_t* begin, int64_t* end) {
  const int64_t chunks = (n + align - 1) / align;
  const int64_t lo = chunks * index / parts, hi = chunks * (index + 1) / parts;
  *begin = std::min(n, lo * align);
  *end = std::min(n, hi * align);
}

}  // namespace rnnkit
