// bfloat16 products with AVX-512 BF16 (vdpbf16ps: 16 lanes, each adding two bfloat16 products
// to a float32 accumulator). Layout, packing and rounding are kernels/bf16_driver.inl's, the
// register tiles kernels/dot_tiles_avx512.inl's; this file supplies the instruction.
// Registered only on CPUs with avx512_bf16 (kernels/registry.cpp).
#include <immintrin.h>

#include "kernels/bf16_driver.inl"
#include "kernels/dot_tiles_avx512.inl"

namespace rnnkit {
namespace avx512bf16_isa {
namespace {

struct Bf16 {
  using Acc = __m512;
  static Acc zero() { return _mm512_setzero_ps(); }
  static Acc dot(Acc c, __m512i a, __m512i b) {
    return _mm512_dpbf16_ps(c, (__m512bh)a, (__m512bh)b);
  }
  static void store(float* p, Acc c) { _mm512_storeu_ps(p, c); }
};

void dot(int64_t M, int64_t Np, int64_t Kp, const uint16_t* a, const uint16_t* panels,
         float* acc) {
  dot_tiles::dot<Bf16>(M, Np, Kp, reinterpret_cast<const uint8_t*>(a),
                       reinterpret_cast<const uint8_t*>(panels), acc);
}

}  // namespace
}  // namespace avx512bf16_isa

void register_avx512bf16_kernels(KernelTable& table) {
  table.gemm_bf16 = bf16::gemm<avx512bf16_isa::dot>;
  table.bf16_kernel = "avx512_bf16";
}

}  // namespace rnnkit
