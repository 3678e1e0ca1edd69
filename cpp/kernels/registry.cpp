// The kernel tables: one per ISA set, each built once on first use and never modified, and the
// pointer to the one in use. Which tables may run is decided by CPU feature bits: a table lists
// the bits its code needs (the flags its files were compiled with) and runs only where all of
// them are set. RNNKIT_SIMD, read once, may only lower the choice.
#include <atomic>
#include <cstdlib>
#include <cstring>

#include "kernels/kernels.h"
#include "runtime/cpu_features.h"

namespace rnnkit {

const char* simd_level_name(SimdLevel level) {
  switch (level) {
    case SimdLevel::avx512: return "avx512";
    case SimdLevel::avx2: return "avx2";
    default: return "generic";
  }
}

bool parse_simd_level(const char* name, SimdLevel* level) {
  for (SimdLevel l : {SimdLevel::generic, SimdLevel::avx2, SimdLevel::avx512})
    if (std::strcmp(name, simd_level_name(l)) == 0) {
      *level = l;
      return true;
    }
  return false;
}

namespace {

// Whether this build has the level's code, and the CPU bits that code needs (CMakeLists.txt
// compiles the AVX2 files with -mavx2 -mfma, the AVX-512 ones with -mavx512{f,dq,bw,vl}).
bool compiled(SimdLevel level) {
  switch (level) {
#if defined(RNNKIT_HAVE_AVX512)
    case SimdLevel::avx512: return true;
#endif
#if defined(RNNKIT_HAVE_AVX2)
    case SimdLevel::avx2: return true;
#endif
    case SimdLevel::generic: return true;
    default: return false;
  }
}

uint32_t required_features(SimdLevel level) {
  switch (level) {
    case SimdLevel::avx512:
      return kAvx2 | kFma | kAvx512f | kAvx512dq | kAvx512bw | kAvx512vl;
    case SimdLevel::avx2: return kAvx2 | kFma;
    default: return 0;
  }
}

bool cpu_has(SimdLevel level) {
  const uint32_t need = required_features(level);
  return (cpu_features() & need) == need;
}

bool runnable(SimdLevel level) { return compiled(level) && cpu_has(level); }

// AMX int8 where the CPU has it and the OS lets this process use the tiles, unless RNNKIT_AMX=0
// (read once) keeps the VNNI kernel (for comparison, or on a system where tile state is
// unwelcome). Asking the OS happens here, on first use of an AVX-512 table, not at import.
bool amx_wanted() {
  static const bool wanted = [] {
    const char* env = std::getenv("RNNKIT_AMX");
    if (env && std::strcmp(env, "0") == 0) return false;
    return (cpu_features() & kAmxInt8) && amx_permitted();
  }();
  return wanted;
}

// The table of `level`, or of the best level below it that this CPU runs: a level's register
// function is itself compiled for that level (the compiler may use its instructions even to
// fill the table), so it must not even be called on a CPU without it.
KernelTable build(SimdLevel level) {
  KernelTable table;
  register_generic(table);
#if defined(RNNKIT_HAVE_AVX2)
  if (level >= SimdLevel::avx2 && cpu_has(SimdLevel::avx2)) register_avx2(table);
#endif
#if defined(RNNKIT_HAVE_AVX512)
  if (level >= SimdLevel::avx512 && cpu_has(SimdLevel::avx512)) register_avx512(table);
#endif
#if defined(RNNKIT_HAVE_AVX512VNNI)
  if (level >= SimdLevel::avx512 && cpu_has(SimdLevel::avx512) &&
      (cpu_features() & kAvx512Vnni))
    register_avx512vnni_int8(table);
#endif
#if defined(RNNKIT_HAVE_AVX512BF16)
  if (level >= SimdLevel::avx512 && cpu_has(SimdLevel::avx512) &&
      (cpu_features() & kAvx512Bf16))
    register_avx512bf16_kernels(table);
#endif
#if defined(RNNKIT_HAVE_AMX)
  if (level >= SimdLevel::avx512 && cpu_has(SimdLevel::avx512) && amx_wanted())
    register_amx_int8(table);
#endif
  return table;
}

// The best level (levels ascend) for which ok(level) holds; generic always does.
template <class Pred>
SimdLevel best_level(Pred ok) {
  SimdLevel best = SimdLevel::generic;
  for (SimdLevel l : {SimdLevel::avx2, SimdLevel::avx512})
    if (ok(l)) best = l;
  return best;
}

SimdLevel best_available() { return best_level(runnable); }

SimdLevel initial_level() {
  SimdLevel level = best_available();
  SimdLevel want;
  if (const char* env = std::getenv("RNNKIT_SIMD"))
    if (parse_simd_level(env, &want) && want < level) level = want;  // may only lower it
  return level;
}

std::atomic<const KernelTable*>& active() {
  static std::atomic<const KernelTable*> table{&kernel_table(initial_level())};
  return table;
}

}  // namespace

const KernelTable& kernel_table(SimdLevel level) {
  // Function-local statics: thread-safe one-time construction, then read-only.
  static const KernelTable generic = build(SimdLevel::generic);
  static const KernelTable avx2 = build(SimdLevel::avx2);
  static const KernelTable avx512 = build(SimdLevel::avx512);
  switch (level) {
    case SimdLevel::avx512: return avx512;
    case SimdLevel::avx2: return avx2;
    default: return generic;
  }
}

SimdLevel compiled_simd_level() { return best_level(compiled); }

SimdLevel cpu_simd_level() { return best_level(cpu_has); }

int available_simd_levels(SimdLevel* out) {
  int n = 0;
  for (SimdLevel l : {SimdLevel::generic, SimdLevel::avx2, SimdLevel::avx512})
    if (runnable(l)) out[n++] = l;
  return n;
}

const KernelTable& kernels() { return *active().load(std::memory_order_acquire); }

SimdLevel select_kernels(SimdLevel level) {
  const SimdLevel best = best_available();
  if (level > best) level = best;
  active().store(&kernel_table(level), std::memory_order_release);
  return level;
}

}  // namespace rnnkit
