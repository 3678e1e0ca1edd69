// The two OpenMP constructs rnnkit uses, in one place so kernels read the same everywhere and
// still build (single-threaded) without OpenMP.
#pragma once

#ifdef RNNKIT_OPENMP
#include <omp.h>
#endif

namespace rnnkit {

// Runs body(part, parts) on `nt` threads (part = 0..parts-1), or inline when nt <= 1.
// OpenMP may grant fewer threads than asked: bodies split work by `parts`, never by `nt`.
template <class Body>
void run_parallel(int nt, Body body) {
#ifdef RNNKIT_OPENMP
  if (nt > 1) {
#pragma omp parallel num_threads(nt)
    body(omp_get_thread_num(), omp_get_num_threads());
    return;
  }
#endif
  (void)nt;
  body(0, 1);
}

// All threads of the enclosing run_parallel meet here (a no-op when it ran inline).
inline void barrier() {
#ifdef RNNKIT_OPENMP
#pragma omp barrier
#endif
}

}  // namespace rnnkit
