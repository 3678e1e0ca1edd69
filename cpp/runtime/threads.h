// Thread policy: how many OpenMP threads a kernel may use, and how many it should use for a
// problem of a given size (small problems run on one thread: a fork/join and one barrier per
// time step cost more than they save below a few million FLOPs per step).
#pragma once
#include <cstdint>

namespace rnnkit {

// Upper bound on threads for rnnkit kernels. Defaults to OpenMP's max (OMP_NUM_THREADS).
void set_num_threads(int n);
int get_num_threads();

// A cap for the calling thread only (0: none), below the global one: a caller that runs two
// independent kernels at once (the two directions of a bidirectional layer) gives each its
// share of the threads. Returns the previous cap of this thread.
int limit_calling_thread(int n);

// Threads to use for work that does `flops_per_sync` floating-point operations between two
// synchronisation points, split into at most `max_parts` independent parts.
int threads_for(double flops_per_sync, int64_t max_parts);

bool openmp_enabled();

// [begin, end) of part `index` out of `parts` when splitting n items into chunks that are
// multiples of `align` (except the last).
void split_range(int64_t n, int parts, int index, int64_t align, int64_t* begin, int64_t* end);

}  // namespace rnnkit
