// The two OpenMP constructs rnnkit uses, in one place so kernels read the same everywhere and
// still build (single-threaded) without OpenMP, plus the rule that keeps them safe:
// no C++ exception ever leaves an OpenMP thread (the runtime would call std::terminate and take
// the interpreter with it). run_parallel catches what a body throws, lets the region finish
// and rethrows the first error in the calling thread, where the bindings turn it into a Python
// exception (std::bad_alloc -> MemoryError).
#pragma once
#include <atomic>
#include <cstdint>
#include <exception>
#include <limits>
#include <mutex>

#ifdef RNNKIT_OPENMP
#include <omp.h>
#endif

namespace rnnkit {

// The first exception thrown by any thread of a region, kept for the caller.
class RegionError {
 public:
  void capture() noexcept {
    std::lock_guard<std::mutex> lock(mu_);
    if (!error_) error_ = std::current_exception();
  }
  void rethrow() const {
    if (error_) std::rethrow_exception(error_);
  }

 private:
  std::mutex mu_;
  std::exception_ptr error_;
};

// Runs body(part, parts) on `nt` threads (part = 0..parts-1), or inline when nt <= 1.
// OpenMP may grant fewer threads than asked: bodies split work by `parts`, never by `nt`.
// A body that meets other threads at barrier() must not throw between barriers: it runs its
// work through a Lockstep (below), which keeps every thread passing the same barriers.
template <class Body>
void run_parallel(int nt, Body body) {
#ifdef RNNKIT_OPENMP
  if (nt > 1) {
    RegionError error;
#pragma omp parallel num_threads(nt)
    {
      try {
        body(omp_get_thread_num(), omp_get_num_threads());
      } catch (...) {
        error.capture();
      }
    }
    error.rethrow();
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

// Failure handling for bodies that meet at barriers (the time loops). If one thread threw and
// left, the others would wait at the next barrier forever; so every thread runs its work through
// run(), which records an exception instead of throwing, and meets the others through sync(),
// which returns false on every thread, after the same barrier, once any thread has failed.
//
// Why the phase numbers: a thread that fails in phase k (the work between barriers k-1 and k)
// records k before it reaches barrier k, so after barrier k every thread sees it; a failure in a
// later phase records a larger number and cannot make a thread that is still checking phase k
// leave early. The caller rethrows with rethrow() after the region.
class Lockstep {
 public:
  class Thread {
   public:
    explicit Thread(Lockstep& shared) : shared_(shared) {}
    // Runs f() unless a failure is already known; an exception from f is recorded, not thrown.
    template <class F>
    void run(F&& f) noexcept {
      if (shared_.failed_phase_.load(std::memory_order_relaxed) <= phase_) return;
      try {
        f();
      } catch (...) {
        shared_.error_.capture();
        int64_t cur = shared_.failed_phase_.load();
        while (phase_ < cur && !shared_.failed_phase_.compare_exchange_weak(cur, phase_)) {
        }
      }
    }
    // The barrier that ends this phase; false (on every thread alike) if any thread failed in it
    // or before.
    bool sync() {
      barrier();
      return shared_.failed_phase_.load() > phase_++;
    }

   private:
    Lockstep& shared_;
    int64_t phase_ = 0;
  };

  void rethrow() const { error_.rethrow(); }

 private:
  std::atomic<int64_t> failed_phase_{std::numeric_limits<int64_t>::max()};
  RegionError error_;
};

}  // namespace rnnkit
