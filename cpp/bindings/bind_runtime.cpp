#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <string>
#include <vector>

#include "kernels/kernels.h"
#include "runtime/build_config.h"
#include "runtime/cpu_features.h"
#include "runtime/threads.h"

namespace py = pybind11;

namespace rnnkit {

namespace {
SimdLevel parse_level(const std::string& name) {
  if (name == "generic") return SimdLevel::generic;
  if (name == "avx2") return SimdLevel::avx2;
  if (name == "avx512") return SimdLevel::avx512;
  throw py::value_error("unknown SIMD level '" + name + "' (expected generic, avx2 or avx512)");
}
}  // namespace

void bind_runtime(py::module_& m) {
  m.def("set_num_threads", &set_num_threads, py::arg("n"));
  m.def("get_num_threads", &get_num_threads);
  m.def("build_info", []() {
    py::dict info;
    info["compiler"] = compiler_description();
    info["openmp"] = openmp_enabled();
    info["simd"] = kernels().isa;
    info["simd_compiled"] = simd_level_name(compiled_simd_level());
    info["simd_cpu"] = simd_level_name(cpu_simd_level());
    std::vector<std::string> available;
    for (int l = 0; l <= static_cast<int>(active_simd_level()); ++l)
      available.push_back(simd_level_name(static_cast<SimdLevel>(l)));
    info["simd_available"] = available;
    info["cpu_model"] = cpu_model();
    info["num_threads"] = get_num_threads();
    return info;
  });
  m.def(
      "force_simd",
      [](const std::string& level) {
        return std::string(simd_level_name(force_simd_level(parse_level(level))));
      },
      py::arg("level"),
      "Testing hook: switch the kernels to `level` (clamped to what this CPU and build allow).");
}

}  // namespace rnnkit
