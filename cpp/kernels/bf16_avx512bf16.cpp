// bfloat16 products with AVX-512 BF16 (vdpbf16ps: 16 lanes, each adding two bfloat16 products
// to a float32 accumulator). Layout, packing and rounding are kernels/bf16_driver.inl's; this
// file supplies only the dot kernel. Registered only on CPUs with avx512_bf16
// (kernels/registry.cpp).
#include <immintrin.h>

#include "kernels/bf16_driver.inl"

namespace rnnkit {
namespace avx512bf16_isa {
namespace {

// Up to 4 rows x 4 panels (64 columns) of accumulators, as the int8 kernel.
template <int R, int NP>
void tile(int64_t Np, int64_t Kp, const uint16_t* a, const uint16_t* panels, int64_t p0,
          float* acc) {
  __m512 c[R][NP];
  for (int r = 0; r < R; ++r)
    for (int j = 0; j < NP; ++j) c[r][j] = _mm512_setzero_ps();
  const uint16_t* base = panels + p0 * Kp * 32;
  const int64_t lda = Kp * 2;
  for (int64_t kp = 0; kp < Kp; ++kp) {
    __m512bh b[NP];
    for (int j = 0; j < NP; ++j) b[j] = (__m512bh)_mm512_loadu_si512(base + (j * Kp + kp) * 32);
    for (int r = 0; r < R; ++r) {
      int32_t pair;
      std::memcpy(&pair, a + r * lda + kp * 2, 4);
      const __m512bh av = (__m512bh)_mm512_set1_epi32(pair);
      for (int j = 0; j < NP; ++j) c[r][j] = _mm512_dpbf16_ps(c[r][j], av, b[j]);
    }
  }
  for (int r = 0; r < R; ++r)
    for (int j = 0; j < NP; ++j) _mm512_storeu_ps(acc + r * Np + (p0 + j) * 16, c[r][j]);
}

using TileFn = void (*)(int64_t, int64_t, const uint16_t*, const uint16_t*, int64_t, float*);
// tiles[(rows - 1) * 4 + (panels - 1)]: every shape compiled with its loops unrolled.
constexpr TileFn tiles[16] = {tile<1, 1>, tile<1, 2>, tile<1, 3>, tile<1, 4>,
                              tile<2, 1>, tile<2, 2>, tile<2, 3>, tile<2, 4>,
                              tile<3, 1>, tile<3, 2>, tile<3, 3>, tile<3, 4>,
                              tile<4, 1>, tile<4, 2>, tile<4, 3>, tile<4, 4>};

void dot(int64_t M, int64_t Np, int64_t Kp, const uint16_t* a, const uint16_t* panels,
         float* acc) {
  const int64_t P = Np / 16, lda = Kp * 2;
  for (int64_t m = 0; m < M; m += 4) {
    const int64_t rows = std::min<int64_t>(4, M - m);
    for (int64_t p = 0; p < P; p += 4) {
      const int64_t np = std::min<int64_t>(4, P - p);
      const uint16_t* ar = a + m * lda;
      float* c = acc + m * Np;
      tiles[(rows - 1) * 4 + (np - 1)](Np, Kp, ar, panels, p, c);
    }
  }
}

}  // namespace
}  // namespace avx512bf16_isa

void register_avx512bf16_kernels(KernelTable& table) {
  table.gemm_bf16 = bf16::gemm<avx512bf16_isa::dot>;
  table.bf16_kernel = "avx512_bf16";
}

}  // namespace rnnkit
