// The FMA peak probe for the AVX2 table: 8-lane fp32 FMAs (vfmadd on ymm registers).
#include <immintrin.h>

#include "kernels/kernels.h"

namespace rnnkit {
namespace avx2_isa {
namespace {

struct Ymm {
  using V = __m256;
  static constexpr int64_t kLanes = 8;
  static __m256 set1(float v) { return _mm256_set1_ps(v); }
  static __m256 fma(__m256 acc, __m256 a, __m256 b) { return _mm256_fmadd_ps(acc, a, b); }
  static __m256 add(__m256 x, __m256 y) { return _mm256_add_ps(x, y); }
  static float first(__m256 v) { return _mm256_cvtss_f32(v); }
};

#include "kernels/fma_peak_impl.inl"

}  // namespace
}  // namespace avx2_isa

void register_avx2_fma_peak(KernelTable& table) {
  table.fma_loop_f32 = avx2_isa::fma_loop<avx2_isa::Ymm>;
}

}  // namespace rnnkit
