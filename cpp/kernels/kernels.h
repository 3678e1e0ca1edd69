// rnnkit kernel interface: the table of compute primitives the cells are written against.
//
// Each instruction set has its own translation unit(s) (kernels/<kernel>_<isa>.cpp) compiled with
// that ISA's flags only. Their code lives in a namespace per ISA; each exposes just a
// register_<isa>(KernelTable&) that overwrites the entries it implements. The registry (kernels/registry.cpp)
// builds one immutable table per level and selects one by the CPU's feature bits.
//
// Layout: row-major, last index fastest. All sizes in elements.
#pragma once
#include <cstdint>

namespace rnnkit {

// C[M,N] = beta * C + op(A) * op(B), single-threaded.
//   op(A)(m,k) = transA ? A[k*lda + m] : A[m*lda + k]     (A is M x K, or K x M when transA)
//   op(B)(k,n) = transB ? B[n*ldb + k] : B[k*ldb + n]     (B is K x N, or N x K when transB)
// beta is 0 or 1. With beta == 0, C is written without being read (it may hold garbage).
// C must not alias A or B. The order in which each C element is summed over k depends only on K
// and the ISA, never on M, N, the element's position or pointer alignment, so callers may split
// M or N among threads and still get bitwise identical results for any thread count.
template <class T>
using GemmFn = void (*)(bool transA, bool transB, int64_t M, int64_t N, int64_t K, const T* A,
                        int64_t lda, const T* B, int64_t ldb, T beta, T* C, int64_t ldc);

// C[M,N] = row + op(A) * op(B), with row (N values) added to every row of C (a layer's bias):
// bitwise what filling every row of C with row and calling GemmFn with beta = 1 gives, without
// that extra pass over C. Same contract as GemmFn otherwise; row must not alias C.
template <class T>
using GemmRowFn = void (*)(bool transA, bool transB, int64_t M, int64_t N, int64_t K, const T* A,
                           int64_t lda, const T* B, int64_t ldb, const T* row, T* C,
                           int64_t ldc);

// Pre-packed right operand, for products that reuse one B at every time step (the recurrent
// weights). packed_b_size gives the buffer length in elements; pack_b fills it from op(B)
// (K x N, see GemmFn); gemm_packed computes C[M,N] = beta*C + A·op(B) with A (M x K, row-major,
// lda). The layout is private to one ISA: pack_b and gemm_packed must come from the same table
// (each level registers all three together). Same determinism contract as GemmFn.
using PackedSizeFn = int64_t (*)(int64_t K, int64_t N);
template <class T>
using PackBFn = void (*)(bool transB, int64_t K, int64_t N, const T* B, int64_t ldb, T* packed);
template <class T>
using GemmPackedFn = void (*)(int64_t M, int64_t N, int64_t K, const T* A, int64_t lda,
                              const T* packed, T beta, T* C, int64_t ldc);

// y[i] = f(x[i]) for i < n. y may alias x exactly (in place), not partially.
template <class T>
using UnaryFn = void (*)(T* y, const T* x, int64_t n);

// y[i] = exp(x[i] - shift) for i < n, where every x[i] - shift <= 0 (shift = the maximum of x:
// softmax's stable form) or NaN (which stays NaN); returns the sum of y, accumulated in a fixed
// order (vector lanes, then the lanes summed in order), so one ISA always gives the same bits.
template <class T>
using ExpSumFn = T (*)(T* y, const T* x, int64_t n, T shift);

// The largest of x[0..n), n >= 1 (a NaN may or may not win: callers see it in exp_sum's sum).
template <class T>
using RowMaxFn = T (*)(const T* x, int64_t n);

// The cells' pointwise loops that are worth a vector width (kernels/pointwise_impl.inl), one set
// per element type. Each computes exactly the roundings of the cell's own scalar code, so
// results do not depend on the level.
//
// lstm_backward: the plain LSTM (no peephole, no ONNX options; cells/lstm.h) over units [0, n)
// of one row and step. gates: the row's post-activation gates, i at gates[0..n), f, g, o at
// strides of H; c_prev (n): c_{t-1}; dh, dy (n): the gradients reaching h_t from later steps and
// from y; dc (n): in, the gradient reaching c_t from step t+1, out, the one reaching c_{t-1};
// dg_step and dg_seq: each gate's pre-activation gradient is written to both, gate g at g*H.
// dg_step[3H..3H+n) holds tanh(c_t) on entry. No other arrays overlap.
template <class T>
using LstmBackwardFn = void (*)(int64_t n, int64_t H, const T* gates, const T* c_prev,
                                const T* dh, const T* dy, T* dc, T* dg_step, T* dg_seq);
// gru_backward: the plain GRU (reset-after, no ONNX options; cells/gru.h) over units [0, n) of
// one row and step. gates: r at gates[0..n), z and n at strides of H; hn (n): W_hn h + b_hn from
// the forward; h_prev (n): h_{t-1}; dy (n); dh (n): in, the gradient reaching h_t from later
// steps, out, its direct term into h_{t-1} (z ⊙ dh); dg_step and dg_seq: gate g at g*H (the n
// gate's differ: dg_step gets it through r). No arrays overlap.
template <class T>
using GruBackwardFn = void (*)(int64_t n, int64_t H, const T* gates, const T* hn,
                               const T* h_prev, const T* dy, T* dh, T* dg_step, T* dg_seq);
template <class T>
struct PointwiseKernels {
  LstmBackwardFn<T> lstm_backward = nullptr;
  GruBackwardFn<T> gru_backward = nullptr;
};

// The FMA peak probe: `iterations` rounds of independent multiply-adds on registers only (no
// loads or stores), so its rate is the core's fp32 FMA throughput at this ISA's vector width,
// the ceiling the GEMM kernels are measured against. Sets *flops (2 per lane per FMA) and
// returns a value derived from every accumulator, so that the loop cannot be optimised away.
using FmaLoopFn = float (*)(int64_t iterations, int64_t* flops);

// One immutable table per ISA set: filled once, then only read (kernels/registry.cpp).
struct KernelTable {
  const char* isa = "generic";
  GemmFn<float> gemm_f32 = nullptr;
  GemmFn<double> gemm_f64 = nullptr;
  GemmRowFn<float> gemm_row_f32 = nullptr;
  GemmRowFn<double> gemm_row_f64 = nullptr;
  PackedSizeFn packed_b_size_f32 = nullptr;
  PackBFn<float> pack_b_f32 = nullptr;
  GemmPackedFn<float> gemm_packed_f32 = nullptr;
  PackedSizeFn packed_b_size_f64 = nullptr;
  PackBFn<double> pack_b_f64 = nullptr;
  GemmPackedFn<double> gemm_packed_f64 = nullptr;
  UnaryFn<float> sigmoid_f32 = nullptr;
  UnaryFn<float> tanh_f32 = nullptr;
  UnaryFn<double> sigmoid_f64 = nullptr;
  UnaryFn<double> tanh_f64 = nullptr;
  ExpSumFn<float> exp_sum_f32 = nullptr;
  ExpSumFn<double> exp_sum_f64 = nullptr;
  RowMaxFn<float> row_max_f32 = nullptr;
  RowMaxFn<double> row_max_f64 = nullptr;
  // int8 weights (kernels/int8_driver.inl): the same contract as the packed float32 products
  // above, with op(B) quantized per column at packing and A per row at each call. One layout
  // for every level; gemm_q8 sums exactly, so every level gives the same bits.
  PackedSizeFn packed_q8_size = nullptr;
  PackBFn<float> pack_q8 = nullptr;
  GemmPackedFn<float> gemm_q8 = nullptr;
  const char* q8_kernel = "portable";  // which integer dot kernel gemm_q8 runs
  // bfloat16 weights (kernels/bf16_driver.inl), the same contract again: op(B) and A rounded
  // to bfloat16, float32 sums.
  PackedSizeFn packed_bf16_size = nullptr;
  PackBFn<float> pack_bf16 = nullptr;
  GemmPackedFn<float> gemm_bf16 = nullptr;
  const char* bf16_kernel = "portable";
  FmaLoopFn fma_loop_f32 = nullptr;
  PointwiseKernels<float> pointwise_f32;
  PointwiseKernels<double> pointwise_f64;
};

// Each ISA file overwrites the entries it implements (the registry starts every table from the
// generic one, so an entry an ISA lacks falls back to the level below).
void register_generic(KernelTable& table);
void register_avx2(KernelTable& table);    // defined only when built with AVX2 sources
void register_avx512(KernelTable& table);  // defined only when built with AVX-512 sources
// The int8 dot kernel for CPUs with avx512_vnni (on top of the AVX-512 table); defined only
// when built with it.
void register_avx512vnni_int8(KernelTable& table);
// The bfloat16 dot kernel for CPUs with avx512_bf16; defined only when built with it.
void register_avx512bf16_kernels(KernelTable& table);
// The int8 products on AMX tiles (over the VNNI kernel); defined only when built with AMX.
void register_amx_int8(KernelTable& table);

// The ISA sets a table can be built for, best last. Which one a CPU may use is decided from its
// feature bits (runtime/cpu_features.h), not from this order.
enum class SimdLevel { generic = 0, avx2 = 1, avx512 = 2 };
const char* simd_level_name(SimdLevel level);
// Parses "generic", "avx2", "avx512"; false for anything else.
bool parse_simd_level(const char* name, SimdLevel* level);

// The table for `level`, built on first use and never changed afterwards.
const KernelTable& kernel_table(SimdLevel level);
// The best level compiled into this build; the best level this CPU could run (if compiled).
SimdLevel compiled_simd_level();
SimdLevel cpu_simd_level();
// Levels this CPU (feature bits, OS register support) and this build can run, ascending.
int available_simd_levels(SimdLevel* out);  // returns the count; out has room for 3
// The table in use: the best available level, lowered by RNNKIT_SIMD if set (read once).
const KernelTable& kernels();
// Testing hook: later calls of kernels() return the table of `level` (clamped to the best
// available) and the level now in use is returned. Tables are immutable, so a kernel already
// running, or an object that packed weights for one table, keeps using its own table.
SimdLevel select_kernels(SimdLevel level);

// Typed views of one table, so engine templates call kernels for float and double alike. The
// engine reads kernels() once per call and passes that table down, so one call never mixes two.
template <class T> inline GemmFn<T> gemm_fn(const KernelTable& k = kernels());
template <> inline GemmFn<float> gemm_fn<float>(const KernelTable& k) { return k.gemm_f32; }
template <> inline GemmFn<double> gemm_fn<double>(const KernelTable& k) { return k.gemm_f64; }
template <class T> inline GemmRowFn<T> gemm_row_fn(const KernelTable& k = kernels());
template <> inline GemmRowFn<float> gemm_row_fn<float>(const KernelTable& k) {
  return k.gemm_row_f32;
}
template <> inline GemmRowFn<double> gemm_row_fn<double>(const KernelTable& k) {
  return k.gemm_row_f64;
}
template <class T> struct PackedGemm {
  PackedSizeFn size;
  PackBFn<T> pack;
  GemmPackedFn<T> gemm;
};
template <class T> inline PackedGemm<T> packed_gemm_fns(const KernelTable& k = kernels());
template <> inline PackedGemm<float> packed_gemm_fns<float>(const KernelTable& k) {
  return {k.packed_b_size_f32, k.pack_b_f32, k.gemm_packed_f32};
}
template <> inline PackedGemm<double> packed_gemm_fns<double>(const KernelTable& k) {
  return {k.packed_b_size_f64, k.pack_b_f64, k.gemm_packed_f64};
}
// The int8 products in PackedGemm's shape, so the engine runs them where it would the float ones.
inline PackedGemm<float> q8_gemm_fns(const KernelTable& k = kernels()) {
  return {k.packed_q8_size, k.pack_q8, k.gemm_q8};
}
inline PackedGemm<float> bf16_gemm_fns(const KernelTable& k = kernels()) {
  return {k.packed_bf16_size, k.pack_bf16, k.gemm_bf16};
}

// How a packed-step object stores its weight matrices: in the layer's own float type, as int8
// or as bfloat16 (float32 layers only).
enum class WeightFormat { native, int8, bf16 };

// What a cell calls of one table: the activations and its pointwise loops.
template <class T> struct Activations {
  UnaryFn<T> sigmoid;
  UnaryFn<T> tanh;
  PointwiseKernels<T> pointwise;
};
template <class T> inline Activations<T> activations(const KernelTable& k = kernels());
template <> inline Activations<float> activations<float>(const KernelTable& k) {
  return {k.sigmoid_f32, k.tanh_f32, k.pointwise_f32};
}
template <> inline Activations<double> activations<double>(const KernelTable& k) {
  return {k.sigmoid_f64, k.tanh_f64, k.pointwise_f64};
}

template <class T> inline ExpSumFn<T> exp_sum_fn(const KernelTable& k = kernels());
template <> inline ExpSumFn<float> exp_sum_fn<float>(const KernelTable& k) {
  return k.exp_sum_f32;
}
template <> inline ExpSumFn<double> exp_sum_fn<double>(const KernelTable& k) {
  return k.exp_sum_f64;
}

template <class T> inline RowMaxFn<T> row_max_fn(const KernelTable& k = kernels());
template <> inline RowMaxFn<float> row_max_fn<float>(const KernelTable& k) {
  return k.row_max_f32;
}
template <> inline RowMaxFn<double> row_max_fn<double>(const KernelTable& k) {
  return k.row_max_f64;
}

}  // namespace rnnkit
