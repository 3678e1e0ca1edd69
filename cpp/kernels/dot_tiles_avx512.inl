// The register tiles of the packed low-precision products (int8 with AVX-512 VNNI, bfloat16 with
// AVX-512 BF16), shared by their kernel files; each includes this with its own flags and its
// Op. Both layouts are panels of 16 columns whose k-groups are one 64-byte vector (int8: 4 k
// per lane; bfloat16: 2), and each row of A gives 4 bytes per k-group, broadcast to all lanes.
//
// Op supplies: using Acc (the accumulator vector); static Acc zero(); static Acc dot(Acc c,
// __m512i a, __m512i b) (c plus a's and b's lane-wise dot products); static void store(Out* p,
// Acc c) with Out the accumulator element type (int32_t or float).
#pragma once
#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <cstring>

namespace rnnkit {
namespace dot_tiles {

// Up to 4 rows x 4 panels (64 columns) of accumulators: each k-group of each row is broadcast
// once and meets NP panels' vectors. a: R rows of `groups` 4-byte groups; acc (R x Np).
template <class Op, int R, int NP, class Out>
void tile(int64_t Np, int64_t groups, const uint8_t* a, const uint8_t* panels, int64_t p0,
          Out* acc) {
  typename Op::Acc c[R][NP];
  for (int r = 0; r < R; ++r)
    for (int j = 0; j < NP; ++j) c[r][j] = Op::zero();
  const uint8_t* base = panels + p0 * groups * 64;
  const int64_t lda = groups * 4;
  for (int64_t g = 0; g < groups; ++g) {
    __m512i b[NP];
    for (int j = 0; j < NP; ++j) b[j] = _mm512_loadu_si512(base + (j * groups + g) * 64);
    for (int r = 0; r < R; ++r) {
      int32_t group;
      std::memcpy(&group, a + r * lda + g * 4, 4);
      const __m512i av = _mm512_set1_epi32(group);
      for (int j = 0; j < NP; ++j) c[r][j] = Op::dot(c[r][j], av, b[j]);
    }
  }
  for (int r = 0; r < R; ++r)
    for (int j = 0; j < NP; ++j) Op::store(acc + r * Np + (p0 + j) * 16, c[r][j]);
}

// acc (M x Np) over all rows and panels, 4 x 4 tiles at a time; every tile shape is its own
// instantiation (no runtime branch in the inner loop). Panels outside, rows inside: a block of
// 4 panels (64 bytes per k-group each: 64 KB at K = 1024) is read from wherever the weights
// live once per call and then from L1/L2 for every other 4 rows. (Rows outside streamed all of
// the weights again for every 4 rows: a sequence's input products over 100 rows read int8
// W_ih 25 times from L3.) Each tile's sums do not depend on the order tiles run in.
template <class Op, class Out>
void dot(int64_t M, int64_t Np, int64_t groups, const uint8_t* a, const uint8_t* panels,
         Out* acc) {
  using TileFn = void (*)(int64_t, int64_t, const uint8_t*, const uint8_t*, int64_t, Out*);
  static constexpr TileFn tiles[16] = {
      tile<Op, 1, 1>, tile<Op, 1, 2>, tile<Op, 1, 3>, tile<Op, 1, 4>,
      tile<Op, 2, 1>, tile<Op, 2, 2>, tile<Op, 2, 3>, tile<Op, 2, 4>,
      tile<Op, 3, 1>, tile<Op, 3, 2>, tile<Op, 3, 3>, tile<Op, 3, 4>,
      tile<Op, 4, 1>, tile<Op, 4, 2>, tile<Op, 4, 3>, tile<Op, 4, 4>};
  const int64_t P = Np / 16, lda = groups * 4;
  for (int64_t p = 0; p < P; p += 4) {
    const int64_t np = std::min<int64_t>(4, P - p);
    for (int64_t m = 0; m < M; m += 4) {
      const int64_t rows = std::min<int64_t>(4, M - m);
      tiles[(rows - 1) * 4 + (np - 1)](Np, groups, a + m * lda, panels, p, acc + m * Np);
    }
  }
}

}  // namespace dot_tiles
}  // namespace rnnkit
