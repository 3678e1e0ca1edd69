// int8 products with AMX (Intel's tile registers: TDPBUSD multiplies a 16 x 64-byte tile of u8
// activations by a 16 x 64-byte tile of s8 weights into a 16 x 16 int32 tile, 16384 products
// per instruction). Layout, packing and quantization are kernels/int8_driver.inl's: a panel of
// 16 columns is Kq quads of 64 bytes, so 16 consecutive quads are exactly one weight tile (Kq is
// a multiple of 16 for this). Sums are exact integers, so results are bitwise those of the
// portable and VNNI kernels. Registered only where the CPU has amx_int8, the OS grants the tile
// state (runtime/cpu_features.h, amx_permitted) and RNNKIT_AMX is not 0 (kernels/registry.cpp).
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <limits>

#include "kernels/int8_driver.inl"

namespace rnnkit {
namespace amx_isa {
namespace {

// Tiles (the intrinsics take literal numbers): tmm0..3 accumulate 4 panels (64 columns) of up
// to 16 rows; tmm4 holds those rows' 16 quads of activations; tmm5..7 the weights (tmm5 again
// for the fourth panel).
constexpr int kFirstWeightTile = 5, kTiles = 8;

// The 64-byte operand of LDTILECFG (palette 1).
struct alignas(64) TileConfig {
  uint8_t palette = 1;
  uint8_t start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t colsb[16] = {};  // bytes per row of each tile
  uint8_t rows[16] = {};
};

// Every tile 64 bytes wide; the accumulators and A have `rows` rows, the weight tiles 16.
void configure(int rows) {
  TileConfig cfg;
  for (int t = 0; t < kTiles; ++t) {
    cfg.rows[t] = static_cast<uint8_t>(t < kFirstWeightTile ? rows : 16);
    cfg.colsb[t] = 64;
  }
  _tile_loadconfig(&cfg);
}

// acc rows [m0, m0 + rows) x panels [p, p + np) (np <= 4), over all Kq quads.
inline void block(int64_t m0, int64_t p, int64_t np, int64_t Np, int64_t Kq, const uint8_t* u,
                  const int8_t* panels, int32_t* acc) {
  const int64_t lda = Kq * q8::kQuad;  // bytes per row of u
  const int64_t pstride = Kq * 64;     // bytes per panel
  const int8_t* w = panels + p * pstride;
  _tile_zero(0);
  _tile_zero(1);
  _tile_zero(2);
  _tile_zero(3);
  for (int64_t kq = 0; kq < Kq; kq += q8::kQuadBlock) {
    _tile_loadd(4, u + m0 * lda + kq * q8::kQuad, lda);
    const int8_t* b = w + kq * 64;
    _tile_loadd(5, b, 64);
    _tile_dpbusd(0, 4, 5);
    if (np > 1) {
      _tile_loadd(6, b + pstride, 64);
      _tile_dpbusd(1, 4, 6);
    }
    if (np > 2) {
      _tile_loadd(7, b + 2 * pstride, 64);
      _tile_dpbusd(2, 4, 7);
    }
    if (np > 3) {
      _tile_loadd(5, b + 3 * pstride, 64);
      _tile_dpbusd(3, 4, 5);
    }
  }
  int32_t* c = acc + m0 * Np + p * q8::kPanel;
  const int64_t ldc = Np * int64_t(sizeof(int32_t));
  _tile_stored(0, c, ldc);
  if (np > 1) _tile_stored(1, c + 16, ldc);
  if (np > 2) _tile_stored(2, c + 32, ldc);
  if (np > 3) _tile_stored(3, c + 48, ldc);
}

// acc (M x Np) = Σ u q. Full 16-row blocks first, then the remaining rows (one tile
// configuration each); within each, panels outside and rows inside, so a block of 4 panels is
// read from where the weights live once per configuration and reused from L1/L2 for every 16
// rows.
void dot(int64_t M, int64_t Np, int64_t Kq, const uint8_t* u, const int8_t* panels,
         int32_t* acc) {
  const int64_t P = Np / q8::kPanel;
  const int64_t full = M / 16 * 16;
  if (full > 0) {
    configure(16);
    for (int64_t p = 0; p < P; p += 4)
      for (int64_t m0 = 0; m0 < full; m0 += 16)
        block(m0, p, std::min<int64_t>(4, P - p), Np, Kq, u, panels, acc);
  }
  if (M > full) {
    configure(int(M - full));
    for (int64_t p = 0; p < P; p += 4)
      block(full, p, std::min<int64_t>(4, P - p), Np, Kq, u, panels, acc);
  }
  _tile_release();  // the 8 KB tile state is not kept (or saved on context switches) between calls
}

}  // namespace
}  // namespace amx_isa

void register_amx_int8(KernelTable& table) {
  table.gemm_q8 = q8::gemm<amx_isa::dot>;
  table.q8_kernel = "amx_int8";
}

}  // namespace rnnkit
