// CPU feature detection (CPUID + XGETBV) and the SIMD level rnnkit may use on this machine.
#pragma once
#include <string>

namespace rnnkit {

enum class SimdLevel { generic = 0, avx2 = 1, avx512 = 2 };

const char* simd_level_name(SimdLevel level);

// Highest level this CPU *and* OS support (the OS must save the wider registers on a context
// switch, which XGETBV reports), ignoring what was compiled in.
SimdLevel cpu_simd_level();

// Highest level compiled into this build.
SimdLevel compiled_simd_level();

// Level in use: min(cpu, compiled, RNNKIT_SIMD if set). RNNKIT_SIMD can only lower the choice.
SimdLevel active_simd_level();

// Testing hook: refill the kernel table for `level` (clamped to active_simd_level()) and return
// the level now in use. Only call it while no kernel is running.
SimdLevel force_simd_level(SimdLevel level);

// The CPU's brand string, e.g. "AMD EPYC 9R14 96-Core Processor" ("unknown" if not x86).
std::string cpu_model();

}  // namespace rnnkit
