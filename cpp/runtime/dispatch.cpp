// Fills the kernel table at first use, from generic up to the active SIMD level (each level
// overwrites the entries it implements, so a missing kernel falls back to the level below).
#include "kernels/kernels.h"
#include "runtime/cpu_features.h"

namespace rnnkit {

namespace {
KernelTable build_table(SimdLevel level) {
  KernelTable table;
  register_generic(table);
#if defined(RNNKIT_HAVE_AVX2)
  if (level >= SimdLevel::avx2) register_avx2(table);
#endif
#if defined(RNNKIT_HAVE_AVX512)
  if (level >= SimdLevel::avx512) register_avx512(table);
#endif
  (void)level;
  return table;
}

KernelTable& table_storage() {
  static KernelTable table = build_table(active_simd_level());  // thread-safe static init
  return table;
}
}  // namespace

const KernelTable& kernels() { return table_storage(); }

SimdLevel force_simd_level(SimdLevel level) {
  const SimdLevel best = active_simd_level();
  if (level > best) level = best;
  table_storage() = build_table(level);
  return level;
}

}  // namespace rnnkit
