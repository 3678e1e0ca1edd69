// The FMA peak loop, written once for any vector type V with an fma(V, V, V) and a lane count:
// included by fma_peak_{generic,avx2,avx512}.cpp, each inside its own ISA namespace and
// compiled with its own flags.
//
// kChains independent accumulators: more than FMA latency (4-5 cycles) times FMA ports (2) on
// the x86 cores rnnkit runs on, so the loop is bound by FMA throughput and not by a dependency
// chain. acc = acc * a + b with a just below 1 converges to b / (1 - a): no overflow, no
// denormals, whatever the iteration count.
constexpr int kChains = 12;

template <class Ops>
float fma_loop(int64_t iterations, int64_t* flops) {
  using V = typename Ops::V;
  V acc[kChains];
  for (int k = 0; k < kChains; ++k) acc[k] = Ops::set1(0.1f * static_cast<float>(k + 1));
  const V a = Ops::set1(0.999999f), b = Ops::set1(1e-6f);
  for (int64_t i = 0; i < iterations; ++i) {
    // Unrolled, so that the accumulators live in registers (an indexed array would not).
#pragma GCC unroll 16
    for (int k = 0; k < kChains; ++k) acc[k] = Ops::fma(acc[k], a, b);
  }
  V sum = acc[0];
  for (int k = 1; k < kChains; ++k) sum = Ops::add(sum, acc[k]);
  *flops = iterations * kChains * Ops::kLanes * 2;
  return Ops::first(sum);
}
