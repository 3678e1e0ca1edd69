// Bindings for threads, build facts and the kernel-table testing hook.
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

void bind_runtime(py::module_& m) {
  m.def("set_num_threads", &set_num_threads, py::arg("n"));
  m.def("get_num_threads", &get_num_threads);
  m.def("limit_calling_thread", &limit_calling_thread, py::arg("n"),
        "Caps the threads of kernels called from this OS thread (0: no cap beyond "
        "set_num_threads); returns the previous cap. For running independent kernels at once.");
  m.def("build_info", []() {
    py::dict info;
    info["compiler"] = compiler_description();
    info["openmp"] = openmp_enabled();
    info["simd"] = kernels().isa;
    info["int8_kernel"] = kernels().q8_kernel;
    info["bf16_kernel"] = kernels().bf16_kernel;
    info["simd_compiled"] = simd_level_name(compiled_simd_level());
    info["simd_cpu"] = simd_level_name(cpu_simd_level());
    SimdLevel levels[3];
    const int n = available_simd_levels(levels);
    std::vector<std::string> available;
    for (int i = 0; i < n; ++i) available.push_back(simd_level_name(levels[i]));
    info["simd_available"] = available;
    std::vector<std::string> features;
    for (int bit = 0; cpu_feature_name(bit); ++bit)
      if (cpu_features() & (1u << bit)) features.push_back(cpu_feature_name(bit));
    info["cpu_features"] = features;
    info["cpu_model"] = cpu_model();
    info["l2_cache_bytes"] = l2_cache_bytes();
    info["amx_permitted"] = amx_permitted();
    info["num_threads"] = get_num_threads();
    return info;
  });
  m.def(
      "force_simd",
      [](const std::string& name) {
        SimdLevel level;
        if (!parse_simd_level(name.c_str(), &level))
          throw py::value_error("unknown SIMD level '" + name +
                                "' (expected generic, avx2 or avx512)");
        return std::string(simd_level_name(select_kernels(level)));
      },
      py::arg("level"),
      "Testing hook: later kernel calls use the table of `level` (clamped to what this CPU and "
      "build allow). Tables are immutable: running kernels and packed weights keep theirs.");
}

}  // namespace rnnkit
