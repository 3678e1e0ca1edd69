#include "runtime/cpu_features.h"

#include <cstdlib>
#include <cstring>
#include <cstdint>

#if defined(__x86_64__) || defined(_M_X64) || defined(__i386__)
#define RNNKIT_X86_CPUID 1
#if defined(_MSC_VER)
#include <intrin.h>
#else
#include <cpuid.h>
#endif
#endif

namespace rnnkit {

const char* simd_level_name(SimdLevel level) {
  switch (level) {
    case SimdLevel::avx512: return "avx512";
    case SimdLevel::avx2: return "avx2";
    default: return "generic";
  }
}

#ifdef RNNKIT_X86_CPUID
namespace {
void cpuid(uint32_t leaf, uint32_t sub, uint32_t r[4]) {
#if defined(_MSC_VER)
  int regs[4];
  __cpuidex(regs, static_cast<int>(leaf), static_cast<int>(sub));
  for (int i = 0; i < 4; ++i) r[i] = static_cast<uint32_t>(regs[i]);
#else
  __cpuid_count(leaf, sub, r[0], r[1], r[2], r[3]);
#endif
}

uint64_t xgetbv0() {
#if defined(_MSC_VER)
  return _xgetbv(0);
#else
  uint32_t lo, hi;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return (static_cast<uint64_t>(hi) << 32) | lo;
#endif
}
}  // namespace

SimdLevel cpu_simd_level() {
  uint32_t r[4];
  cpuid(0, 0, r);
  const uint32_t max_leaf = r[0];
  if (max_leaf < 7) return SimdLevel::generic;
  cpuid(1, 0, r);
  const bool osxsave = (r[2] >> 27) & 1, avx = (r[2] >> 28) & 1, fma = (r[2] >> 12) & 1;
  if (!osxsave || !avx) return SimdLevel::generic;
  const uint64_t xcr0 = xgetbv0();
  const bool os_ymm = (xcr0 & 0x6) == 0x6;            // XMM and YMM state
  const bool os_zmm = (xcr0 & 0xE6) == 0xE6;          // plus opmask, ZMM_Hi256, Hi16_ZMM
  cpuid(7, 0, r);
  const bool avx2 = (r[1] >> 5) & 1;
  const bool avx512f = (r[1] >> 16) & 1, avx512dq = (r[1] >> 17) & 1;
  const bool avx512bw = (r[1] >> 30) & 1, avx512vl = (r[1] >> 31) & 1;
  if (os_zmm && avx512f && avx512dq && avx512bw && avx512vl && avx2 && fma)
    return SimdLevel::avx512;
  if (os_ymm && avx2 && fma) return SimdLevel::avx2;
  return SimdLevel::generic;
}

std::string cpu_model() {
  uint32_t r[4];
  cpuid(0x80000000u, 0, r);
  if (r[0] < 0x80000004u) return "unknown";
  char brand[49] = {};
  for (uint32_t i = 0; i < 3; ++i) {
    cpuid(0x80000002u + i, 0, r);
    std::memcpy(brand + 16 * i, r, 16);
  }
  std::string s(brand);
  const auto b = s.find_first_not_of(' ');
  const auto e = s.find_last_not_of(' ');
  return b == std::string::npos ? "unknown" : s.substr(b, e - b + 1);
}
#else
SimdLevel cpu_simd_level() { return SimdLevel::generic; }
std::string cpu_model() { return "unknown"; }
#endif

SimdLevel compiled_simd_level() {
#if defined(RNNKIT_HAVE_AVX512)
  return SimdLevel::avx512;
#elif defined(RNNKIT_HAVE_AVX2)
  return SimdLevel::avx2;
#else
  return SimdLevel::generic;
#endif
}

SimdLevel active_simd_level() {
  SimdLevel level = cpu_simd_level();
  if (compiled_simd_level() < level) level = compiled_simd_level();
  if (const char* env = std::getenv("RNNKIT_SIMD")) {
    SimdLevel want = level;
    if (std::strcmp(env, "generic") == 0) want = SimdLevel::generic;
    else if (std::strcmp(env, "avx2") == 0) want = SimdLevel::avx2;
    else if (std::strcmp(env, "avx512") == 0) want = SimdLevel::avx512;
    if (want < level) level = want;  // the variable may only lower the level
  }
  return level;
}

}  // namespace rnnkit
