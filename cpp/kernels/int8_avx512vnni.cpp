// int8 products with AVX-512 VNNI (vpdpbusd: 16 lanes of four u8 x s8 products summed into
// int32 per instruction). Layout, packing and quantization are kernels/int8_driver.inl's, the
// register tiles kernels/dot_tiles_avx512.inl's; this file supplies the instruction. It sums
// exactly, as the portable kernel does. Registered only on CPUs with avx512_vnni
// (kernels/registry.cpp).
#include <immintrin.h>

#include <limits>

#include "kernels/dot_tiles_avx512.inl"
#include "kernels/int8_driver.inl"

namespace rnnkit {
namespace avx512vnni_isa {
namespace {

struct Vnni {
  using Acc = __m512i;
  static Acc zero() { return _mm512_setzero_si512(); }
  static Acc dot(Acc c, __m512i a, __m512i b) { return _mm512_dpbusd_epi32(c, a, b); }
  static void store(int32_t* p, Acc c) { _mm512_storeu_si512(p, c); }
};

void dot(int64_t M, int64_t Np, int64_t Kq, const uint8_t* u, const int8_t* panels,
         int32_t* acc) {
  dot_tiles::dot<Vnni>(M, Np, Kq, u, reinterpret_cast<const uint8_t*>(panels), acc);
}

}  // namespace
}  // namespace avx512vnni_isa

void register_avx512vnni_int8(KernelTable& table) {
  table.gemm_q8 = q8::gemm<avx512vnni_isa::dot>;
  table.q8_kernel = "avx512_vnni";
}

}  // namespace rnnkit
