#include "runtime/cpu_features.h"

#include <cstdint>
#include <cstring>

#if defined(__unix__) || defined(__APPLE__)
#include <unistd.h>
#endif
#if defined(__linux__) && (defined(__x86_64__) || defined(__i386__))
#include <sys/syscall.h>
#endif

#if defined(__x86_64__) || defined(_M_X64) || defined(__i386__)
#define RNNKIT_X86_CPUID 1
#if defined(_MSC_VER)
#include <intrin.h>
#else
#include <cpuid.h>
#endif
#endif

namespace rnnkit {

const char* cpu_feature_name(int bit) {
  static const char* const names[] = {"avx2",        "fma",        "f16c",     "avx512f",
                                      "avx512dq",    "avx512bw",   "avx512vl", "avx512_bf16",
                                      "avx512_vnni", "avx_vnni",   "amx_bf16", "amx_int8"};
  return bit >= 0 && bit < int(sizeof(names) / sizeof(names[0])) ? names[bit] : nullptr;
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

uint32_t detect() {
  uint32_t r[4];
  cpuid(0, 0, r);
  const uint32_t max_leaf = r[0];
  if (max_leaf < 7) return 0;
  cpuid(1, 0, r);
  const bool osxsave = (r[2] >> 27) & 1, avx = (r[2] >> 28) & 1;
  if (!osxsave || !avx) return 0;
  const bool fma = (r[2] >> 12) & 1, f16c = (r[2] >> 29) & 1;
  const uint64_t xcr0 = xgetbv0();
  const bool os_ymm = (xcr0 & 0x6) == 0x6;            // XMM and YMM state
  const bool os_zmm = (xcr0 & 0xE6) == 0xE6;          // plus opmask, ZMM_Hi256, Hi16_ZMM
  const bool os_amx = (xcr0 & 0x60000) == 0x60000;    // XTILECFG and XTILEDATA
  uint32_t f = 0;
  cpuid(7, 0, r);
  const uint32_t ebx = r[1], ecx = r[2], edx = r[3];
  uint32_t leaf7_1_eax = 0;
  if (r[0] >= 1) {
    uint32_t s[4];
    cpuid(7, 1, s);
    leaf7_1_eax = s[0];
  }
  if (os_ymm) {
    if ((ebx >> 5) & 1) f |= kAvx2;
    if (fma) f |= kFma;
    if (f16c) f |= kF16c;
    if ((leaf7_1_eax >> 4) & 1) f |= kAvxVnni;
  }
  if (os_zmm) {
    if ((ebx >> 16) & 1) f |= kAvx512f;
    if ((ebx >> 17) & 1) f |= kAvx512dq;
    if ((ebx >> 30) & 1) f |= kAvx512bw;
    if ((ebx >> 31) & 1) f |= kAvx512vl;
    if ((ecx >> 11) & 1) f |= kAvx512Vnni;
    if ((leaf7_1_eax >> 5) & 1) f |= kAvx512Bf16;
  }
  if (os_amx) {
    if ((edx >> 22) & 1) f |= kAmxBf16;
    if ((edx >> 25) & 1) f |= kAmxInt8;
  }
  return f;
}
}  // namespace

uint32_t cpu_features() {
  static const uint32_t features = detect();  // thread-safe static init
  return features;
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
uint32_t cpu_features() { return 0; }
std::string cpu_model() { return "unknown"; }
#endif

bool amx_permitted() {
  static const bool permitted = [] {
    if (!(cpu_features() & (kAmxInt8 | kAmxBf16))) return false;
#if defined(__linux__) && defined(SYS_arch_prctl)
    // Linux (5.16+) keeps the 8 KB tile state off until a process asks for it.
    constexpr long kArchReqXcompPerm = 0x1023, kXfeatureXtiledata = 18;
    return syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) == 0;
#else
    return false;
#endif
  }();
  return permitted;
}

int64_t l2_cache_bytes() {
  static const int64_t bytes = [] {
    long n = -1;
#if defined(_SC_LEVEL2_CACHE_SIZE)
    n = sysconf(_SC_LEVEL2_CACHE_SIZE);
#endif
    return n > 0 ? int64_t(n) : int64_t(1) << 20;
  }();
  return bytes;
}

}  // namespace rnnkit
