// Chooses, call by call, between all the allowed threads and one thread for a kernel whose
// results do not depend on the thread count (the packed-step serving path), by timing both.
//
// Why: a parallel call meets at a barrier every step, so it runs at the pace of its slowest
// thread. On an idle machine more threads win; where other processes keep the cores busy, or
// another library's thread pool spins next to ours, a thread that loses its core holds up every
// step, and one thread can be faster than two (measured: LSTM H 1024 B 1 on 2 threads 1.22x
// slower than on 1 beside a busy process per core). So each cycle of kCycle calls starts with
// kProbes calls alternating between the two, and the rest of the cycle runs the one whose
// median time per unit of work was lower. A new cycle probes again, so a change of load is seen
// within kCycle calls. Thread-safe: calls from several threads share one record.
#pragma once
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <mutex>

#include "runtime/threads.h"

namespace rnnkit {

class ThreadChooser {
 public:
  static constexpr int64_t kCycle = 64, kProbes = 6;  // kProbes even: both get kProbes / 2

  // Runs fn() with this call's thread choice (one thread, or the caller's usual cap) and records
  // its time per unit of `work` (e.g. rows x steps). Inline when only one thread is allowed.
  template <class Fn>
  void run(double work, Fn&& fn) {
    if (get_num_threads() <= 1) {
      fn();
      return;
    }
    int64_t call;
    bool single;
    {
      std::lock_guard<std::mutex> lock(mu_);
      call = calls_++ % kCycle;
      single = call < kProbes ? (call % 2 == 1) : single_;
    }
    const int before = single ? limit_calling_thread(1) : 0;
    const auto t0 = std::chrono::steady_clock::now();
    try {
      fn();
    } catch (...) {
      if (single) limit_calling_thread(before);
      throw;
    }
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (single) limit_calling_thread(before);
    if (call >= kProbes) return;
    std::lock_guard<std::mutex> lock(mu_);
    double* t = probe_[single ? 1 : 0];
    t[call / 2] = s / std::max(work, 1.0);
    if (call == kProbes - 1) single_ = median(probe_[1]) < median(probe_[0]);
  }

 private:
  static double median(double* v) {
    double c[kProbes / 2];
    std::copy(v, v + kProbes / 2, c);
    std::sort(c, c + kProbes / 2);
    return c[kProbes / 4];
  }
  std::mutex mu_;
  int64_t calls_ = 0;
  double probe_[2][kProbes / 2] = {};
  bool single_ = false;
};

}  // namespace rnnkit
