// Testing hooks: the primitives of one kernel table called directly, so tests can check each
// ISA's GEMM and activations beside the kernels (tests/test_kernels.py) rather than only through
// cell results. `level` names the table ("generic", "avx2", "avx512"); a level this CPU cannot
// run is refused. Matrices are 2-D with unit stride along rows and any row stride (the leading
// dimension), so views with ld > columns are tested too.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <string>

#include "bindings/common.h"
#include "kernels/kernels.h"

namespace rnnkit {
namespace {

const KernelTable& table_for(const std::string& name) {
  SimdLevel level;
  if (!parse_simd_level(name.c_str(), &level))
    throw py::value_error("unknown SIMD level '" + name + "'");
  SimdLevel levels[3];
  const int n = available_simd_levels(levels);
  for (int i = 0; i < n; ++i)
    if (levels[i] == level) return kernel_table(level);
  throw py::value_error("SIMD level '" + name + "' is not available on this CPU or build");
}

// A 2-D matrix of dtype T with unit column stride; its leading dimension in elements.
template <class T>
T* matrix(const py::handle& obj, const char* name, int64_t* rows, int64_t* cols, int64_t* ld,
          bool writable) {
  if (!py::isinstance<py::array_t<T>>(obj))
    throw py::type_error(std::string(name) + " must be an ndarray of dtype " + dtype_name(T()));
  auto a = py::reinterpret_borrow<py::array>(obj);
  if (a.ndim() != 2) throw py::value_error(std::string(name) + " must be 2-D");
  const auto item = static_cast<py::ssize_t>(sizeof(T));
  // An empty array has no layout to check (numpy gives it arbitrary strides, 0 in numpy 2).
  const bool empty = a.size() == 0;
  if (!empty && ((a.shape(1) > 1 && a.strides(1) != item) || a.strides(0) % item != 0 ||
                 (a.shape(0) > 1 && a.strides(0) < a.shape(1) * item)))
    throw py::value_error(std::string(name) + " must have unit stride along its rows");
  if (writable && !a.writeable()) throw py::value_error(std::string(name) + " must be writable");
  *rows = a.shape(0);
  *cols = a.shape(1);
  *ld = a.shape(0) > 1 && !empty ? a.strides(0) / item : std::max<int64_t>(a.shape(1), 1);
  return static_cast<T*>(a.mutable_data());
}

template <class T>
void gemm(const KernelTable& k, bool transA, bool transB, const py::handle& A,
          const py::handle& B, const py::handle& C, double beta, bool packed,
          const py::handle& row) {
  int64_t ar, ac, lda, br, bc, ldb, M, N, ldc;
  const T* pa = matrix<T>(A, "A", &ar, &ac, &lda, false);
  const T* pb = matrix<T>(B, "B", &br, &bc, &ldb, false);
  T* pc = matrix<T>(C, "C", &M, &N, &ldc, true);
  const int64_t K = transA ? ar : ac;
  if ((transA ? ac : ar) != M || (transB ? br : bc) != N || (transB ? bc : br) != K)
    throw py::value_error("op(A) (M x K), op(B) (K x N) and C (M x N) do not agree");
  if (beta != 0.0 && beta != 1.0) throw py::value_error("beta must be 0 or 1");
  if (!row.is_none()) {
    if (packed) throw py::value_error("row is for gemm_row, which has no packed form");
    int64_t rr, rc, ldr;
    const T* pr = matrix<T>(row, "row", &rr, &rc, &ldr, false);
    if (rr != 1 || rc != N) throw py::value_error("row must have shape (1, N)");
    gemm_row_fn<T>(k)(transA, transB, M, N, K, pa, lda, pb, ldb, pr, pc, ldc);
  } else if (packed) {
    if (transA) throw py::value_error("gemm_packed takes A untransposed");
    const PackedGemm<T> pg = packed_gemm_fns<T>(k);
    std::vector<T> buf(pg.size(K, N) + 1);
    pg.pack(transB, K, N, pb, ldb, buf.data());
    pg.gemm(M, N, K, pa, lda, buf.data(), T(beta), pc, ldc);
  } else {
    gemm_fn<T>(k)(transA, transB, M, N, K, pa, lda, pb, ldb, T(beta), pc, ldc);
  }
}

// y = f(x) into a new array, or into `out` (same shape and dtype, C-contiguous; it may be x
// itself, the exact aliasing UnaryFn allows).
template <class T>
py::object unary(const KernelTable& k, const std::string& fn, const py::handle& x,
                 const py::handle& out) {
  const int64_t n = dim(x, "x", 1, 0, "(n,)");
  const T* px = input<T>(x, "x", {n});
  py::object y = out.is_none() ? py::object(new_array<T>({n}, false))
                               : py::reinterpret_borrow<py::object>(out);
  T* dst = output<T>(y, "out", {n});
  if (dst != px && dst < px + n && px < dst + n)
    throw py::value_error("out may be x itself but must not partially overlap it");
  const Activations<T> act = activations<T>(k);
  if (fn == "sigmoid") act.sigmoid(dst, px, n);
  else if (fn == "tanh") act.tanh(dst, px, n);
  else throw py::value_error("unknown activation '" + fn + "' (sigmoid or tanh)");
  return y;
}

}  // namespace

void bind_kernels(py::module_& m) {
  m.def("_kernel_gemm",
        [](const std::string& level, bool transA, bool transB, const py::handle& A,
           const py::handle& B, const py::handle& C, double beta, bool packed,
           const py::handle& row) {
          const KernelTable& k = table_for(level);
          dispatch_float(A, "A", [&](auto tag) {
            gemm<decltype(tag)>(k, transA, transB, A, B, C, beta, packed, row);
          });
        },
        py::arg("level"), py::arg("transA"), py::arg("transB"), py::arg("A"), py::arg("B"),
        py::arg("C"), py::arg("beta"), py::arg("packed") = false, py::arg("row") = py::none(),
        "Testing hook: C = beta*C + op(A) op(B) with one table's gemm (packed: pack_b + "
        "gemm_packed; row, an array (1, N): gemm_row, C = row + op(A) op(B), beta unused), in "
        "place on C.");
  m.def("_kernel_unary",
        [](const std::string& level, const std::string& fn, const py::handle& x,
           const py::handle& out) -> py::object {
          const KernelTable& k = table_for(level);
          return dispatch_float(x, "x", [&](auto tag) -> py::object {
            return unary<decltype(tag)>(k, fn, x, out);
          });
        },
        py::arg("level"), py::arg("fn"), py::arg("x"), py::arg("out") = py::none(),
        "Testing hook: one table's sigmoid or tanh of a 1-D array, returned in a new array or "
        "written into out (which may be x itself).");
  m.def("_kernel_fma_loop",
        [](const std::string& level, int64_t iterations) {
          if (iterations < 0) throw py::value_error("iterations must be >= 0");
          const KernelTable& k = table_for(level);
          int64_t flops = 0;
          float sink;
          {
            py::gil_scoped_release release;  // timed by the caller: nothing else in the way
            sink = k.fma_loop_f32(iterations, &flops);
          }
          return py::make_tuple(flops, sink);
        },
        py::arg("level"), py::arg("iterations"),
        "Benchmark hook: the FMA peak probe of one table (register-only fp32 multiply-adds); "
        "returns (flops done, a value that depends on all of them).");
}

}  // namespace rnnkit
