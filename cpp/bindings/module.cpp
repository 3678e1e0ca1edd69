// The private compiled module rnnkit._core. Bindings only: each area binds itself.
#include <pybind11/pybind11.h>

namespace py = pybind11;

namespace rnnkit {
void bind_runtime(py::module_& m);
void bind_cells(py::module_& m);
void bind_linear(py::module_& m);
void bind_optim(py::module_& m);
void bind_kernels(py::module_& m);
void bind_losses(py::module_& m);
}  // namespace rnnkit

PYBIND11_MODULE(_core, m) {
  m.doc() = "rnnkit compiled core (private: use rnnkit.ops and rnnkit.nn)";
  rnnkit::bind_runtime(m);
  rnnkit::bind_cells(m);
  rnnkit::bind_linear(m);
  rnnkit::bind_optim(m);
  rnnkit::bind_kernels(m);
  rnnkit::bind_losses(m);
}
