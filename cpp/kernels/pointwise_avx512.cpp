// The cells' pointwise loops (kernels/pointwise_impl.inl) compiled with this level's flags.
#include <cstdint>

#include "kernels/kernels.h"

namespace rnnkit {
namespace avx512_isa {
namespace {

#define RNNKIT_POINTWISE_IMPL_INSIDE_ISA_FILE
#include "kernels/pointwise_impl.inl"
#undef RNNKIT_POINTWISE_IMPL_INSIDE_ISA_FILE

}  // namespace
}  // namespace avx512_isa

// Called by register_avx512 (gemm_avx512.cpp), so each level is one registration.
void register_avx512_pointwise(KernelTable& table) {
  avx512_isa::register_pointwise_type(table.pointwise_f32);
  avx512_isa::register_pointwise_type(table.pointwise_f64);
}

}  // namespace rnnkit
