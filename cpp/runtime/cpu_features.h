// CPU feature detection (CPUID + XGETBV): which instruction-set extensions this CPU and OS
// support, as individual bits. The kernel registry (kernels/registry.cpp) decides from these bits
// which kernel tables may run; build_info() reports them all.
#pragma once
#include <cstdint>
#include <string>

namespace rnnkit {

// One bit per extension. An AVX-512 or AMX bit is set only when the OS also saves the wider
// register state on a context switch (XGETBV), so a set bit always means "usable".
enum CpuFeature : uint32_t {
  kAvx2 = 1u << 0,
  kFma = 1u << 1,
  kF16c = 1u << 2,
  kAvx512f = 1u << 3,
  kAvx512dq = 1u << 4,
  kAvx512bw = 1u << 5,
  kAvx512vl = 1u << 6,
  kAvx512Bf16 = 1u << 7,
  kAvx512Vnni = 1u << 8,
  kAvxVnni = 1u << 9,
  kAmxBf16 = 1u << 10,
  kAmxInt8 = 1u << 11,
};

// The features of this CPU (0 on non-x86 builds), detected once.
uint32_t cpu_features();

// Name of each bit ("avx2", "avx512_bf16", ...), for build_info; nullptr past the last.
const char* cpu_feature_name(int bit);

// The CPU's brand string, e.g. "AMD EPYC 9R14 96-Core Processor" ("unknown" if not x86).
std::string cpu_model();

// Whether this process may use the AMX tile registers: the CPU and OS support them
// (kAmxInt8 or kAmxBf16) and Linux granted the permission (arch_prctl ARCH_REQ_XCOMP_PERM for
// XTILEDATA, asked once, on first call, for the whole process). Always false elsewhere.
bool amx_permitted();

// Bytes of L2 cache per core as the OS reports it (glibc's sysconf, from CPUID), detected once;
// 1 MiB, the smallest L2 of the CPUs rnnkit tunes for, when it is not reported. The GEMM driver
// asks it whether a streamed operand will miss L2 (kernels/gemm_driver.inl, run_rows).
int64_t l2_cache_bytes();

}  // namespace rnnkit
