// The portable bfloat16 products (kernels/bf16_driver.inl): float32 sums of exact products.
#include "kernels/bf16_driver.inl"

namespace rnnkit {
namespace generic_isa {
namespace {

void bf16_dot(int64_t M, int64_t Np, int64_t Kp, const uint16_t* a, const uint16_t* panels,
              float* acc) {
  for (int64_t m = 0; m < M; ++m)
    for (int64_t p = 0; p < Np / bf16::kPanel; ++p) {
      float sum[bf16::kPanel] = {};
      const uint16_t* panel = panels + p * Kp * 32;
      const uint16_t* ar = a + m * Kp * 2;
      for (int64_t kp = 0; kp < Kp; ++kp)
        for (int64_t c = 0; c < bf16::kPanel; ++c)
          for (int64_t i = 0; i < 2; ++i)
            sum[c] += bf16::from_bf16(ar[kp * 2 + i]) * bf16::from_bf16(panel[kp * 32 + c * 2 + i]);
      std::copy(sum, sum + bf16::kPanel, acc + m * Np + p * bf16::kPanel);
    }
}

}  // namespace
}  // namespace generic_isa

void register_generic_bf16(KernelTable& table) {
  table.packed_bf16_size = bf16::packed_size;
  table.pack_bf16 = bf16::pack;
  table.gemm_bf16 = bf16::gemm<generic_isa::bf16_dot>;
  table.bf16_kernel = "portable";
}

}  // namespace rnnkit
