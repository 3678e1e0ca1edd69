// The FMA peak probe for the portable table: scalar fp32 multiply-adds (the compiler may
// still vectorise them with the baseline ISA, SSE2 on x86-64).
#include "kernels/kernels.h"

namespace rnnkit {
namespace generic_isa {
namespace {

struct ScalarOps {
  using V = float;
  static constexpr int64_t kLanes = 1;
  static float set1(float v) { return v; }
  static float fma(float acc, float a, float b) { return acc * a + b; }
  static float add(float x, float y) { return x + y; }
  static float first(float v) { return v; }
};

#include "kernels/fma_peak_impl.inl"

}  // namespace
}  // namespace generic_isa

void register_generic_fma_peak(KernelTable& table) {
  table.fma_loop_f32 = generic_isa::fma_loop<generic_isa::ScalarOps>;
}

}  // namespace rnnkit
