// The cells' pointwise loops (kernels/pointwise_impl.inl) compiled with this level's flags.
#include <cstdint>

#include "kernels/kernels.h"

namespace rnnkit {
namespace generic_isa {
namespace {

#define RNNKIT_POINTWISE_IMPL_INSIDE_ISA_FILE
#include "kernels/pointwise_impl.inl"
#undef RNNKIT_POINTWISE_IMPL_INSIDE_ISA_FILE

}  // namespace
}  // namespace generic_isa

// Called by register_generic (gemm_generic.cpp), so each level is one registration.
void register_generic_pointwise(KernelTable& table) {
  generic_isa::register_pointwise_type(table.pointwise_f32);
  generic_isa::register_pointwise_type(table.pointwise_f64);
}

}  // namespace rnnkit
