// int8 products with AVX-512 VNNI (vpdpbusd: 16 lanes of four u8 x s8 products summed into
// int32 per instruction). Layout, packing and quantization are kernels/int8_driver.inl's; this
// file supplies only the integer dot kernel, which sums exactly as the portable one does.
// Registered only on CPUs with avx512_vnni (kernels/registry.cpp).
#include <immintrin.h>

#include <limits>

#include "kernels/int8_driver.inl"

namespace rnnkit {
namespace avx512vnni_isa {
namespace {

// Up to 4 rows x 4 panels (64 columns) of accumulators; each quad of each row is broadcast
// once and meets 4 panels' vectors.
template <int R, int NP>
void tile(int64_t Np, int64_t Kq, const uint8_t* u, const int8_t* panels, int64_t p0,
          int32_t* acc) {
  __m512i c[R][NP];
  for (int r = 0; r < R; ++r)
    for (int j = 0; j < NP; ++j) c[r][j] = _mm512_setzero_si512();
  const int8_t* base = panels + p0 * Kq * 64;
  const int64_t lda = Kq * 4;
  for (int64_t kq = 0; kq < Kq; ++kq) {
    __m512i b[NP];
    for (int j = 0; j < NP; ++j) b[j] = _mm512_loadu_si512(base + (j * Kq + kq) * 64);
    for (int r = 0; r < R; ++r) {
      int32_t quad;
      std::memcpy(&quad, u + r * lda + kq * 4, 4);
      const __m512i a = _mm512_set1_epi32(quad);
      for (int j = 0; j < NP; ++j) c[r][j] = _mm512_dpbusd_epi32(c[r][j], a, b[j]);
    }
  }
  for (int r = 0; r < R; ++r)
    for (int j = 0; j < NP; ++j) _mm512_storeu_si512(acc + r * Np + (p0 + j) * 16, c[r][j]);
}

using TileFn = void (*)(int64_t, int64_t, const uint8_t*, const int8_t*, int64_t, int32_t*);
// tiles[(rows - 1) * 4 + (panels - 1)]: every shape compiled with its loops unrolled.
constexpr TileFn tiles[16] = {tile<1, 1>, tile<1, 2>, tile<1, 3>, tile<1, 4>,
                              tile<2, 1>, tile<2, 2>, tile<2, 3>, tile<2, 4>,
                              tile<3, 1>, tile<3, 2>, tile<3, 3>, tile<3, 4>,
                              tile<4, 1>, tile<4, 2>, tile<4, 3>, tile<4, 4>};

void dot(int64_t M, int64_t Np, int64_t Kq, const uint8_t* u, const int8_t* panels,
         int32_t* acc) {
  const int64_t P = Np / 16, lda = Kq * 4;
  for (int64_t m = 0; m < M; m += 4) {
    const int64_t rows = std::min<int64_t>(4, M - m);
    for (int64_t p = 0; p < P; p += 4) {
      const int64_t np = std::min<int64_t>(4, P - p);
      const uint8_t* a = u + m * lda;
      int32_t* c = acc + m * Np;
      tiles[(rows - 1) * 4 + (np - 1)](Np, Kq, a, panels, p, c);
    }
  }
}

}  // namespace
}  // namespace avx512vnni_isa

void register_avx512vnni_int8(KernelTable& table) {
  table.gemm_q8 = q8::gemm<avx512vnni_isa::dot>;
  table.q8_kernel = "avx512_vnni";
}

}  // namespace rnnkit
