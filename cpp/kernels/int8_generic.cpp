// The portable int8 products (kernels/int8_driver.inl): plain integer loops, the reference every
// faster level must match bit for bit.
#include <limits>

#include "kernels/int8_driver.inl"

namespace rnnkit {
namespace generic_isa {
namespace {

void dot(int64_t M, int64_t Np, int64_t Kq, const uint8_t* u, const int8_t* panels,
         int32_t* acc) {
  for (int64_t m = 0; m < M; ++m)
    for (int64_t p = 0; p < Np / q8::kPanel; ++p) {
      int32_t sum[q8::kPanel] = {};
      const int8_t* panel = panels + p * Kq * 64;
      const uint8_t* a = u + m * Kq * q8::kQuad;
      for (int64_t kq = 0; kq < Kq; ++kq)
        for (int64_t c = 0; c < q8::kPanel; ++c)
          for (int64_t i = 0; i < q8::kQuad; ++i)
            sum[c] += int32_t(a[kq * 4 + i]) * int32_t(panel[kq * 64 + c * 4 + i]);
      std::copy(sum, sum + q8::kPanel, acc + m * Np + p * q8::kPanel);
    }
}

}  // namespace
}  // namespace generic_isa

void register_generic_int8(KernelTable& table) {
  table.packed_q8_size = q8::packed_size;
  table.pack_q8 = q8::pack;
  table.gemm_q8 = q8::gemm<generic_isa::dot>;
  table.q8_kernel = "portable";
}

}  // namespace rnnkit
