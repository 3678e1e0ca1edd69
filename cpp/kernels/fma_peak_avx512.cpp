// The FMA peak probe for the AVX-512 table: 16-lane fp32 FMAs (vfmadd on zmm registers).
#include <immintrin.h>

#include "kernels/kernels.h"

namespace rnnkit {
namespace avx512_isa {
namespace {

struct Zmm {
  using V = __m512;
  static constexpr int64_t kLanes = 16;
  static __m512 set1(float v) { return _mm512_set1_ps(v); }
  static __m512 fma(__m512 acc, __m512 a, __m512 b) { return _mm512_fmadd_ps(acc, a, b); }
  static __m512 add(__m512 x, __m512 y) { return _mm512_add_ps(x, y); }
  static float first(__m512 v) { return _mm512_cvtss_f32(v); }
};

#include "kernels/fma_peak_impl.inl"

}  // namespace
}  // namespace avx512_isa

void register_avx512_fma_peak(KernelTable& table) {
  table.fma_loop_f32 = avx512_isa::fma_loop<avx512_isa::Zmm>;
}

}  // namespace rnnkit
