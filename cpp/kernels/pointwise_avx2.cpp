// The cells' pointwise loops (kernels/pointwise_impl.inl) compiled with this level's flags.
#include <cstdint>

#include "kernels/kernels.h"

namespace rnnkit {
namespace avx2_isa {
namespace {

#define RNNKIT_POINTWISE_IMPL_INSIDE_ISA_FILE
#include "kernels/pointwise_impl.inl"
#undef RNNKIT_POINTWISE_IMPL_INSIDE_ISA_FILE

}  // namespace
}  // namespace avx2_isa

// Called by register_avx2 (gemm_avx2.cpp), so each level is one registration.
void register_avx2_pointwise(KernelTable& table) {
  avx2_isa::register_pointwise_type(table.pointwise_f32);
  avx2_isa::register_pointwise_type(table.pointwise_f64);
}

}  // namespace rnnkit
