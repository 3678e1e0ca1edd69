// Facts fixed when the core was compiled, for build_info().
#pragma once

namespace rnnkit {
const char* compiler_description();  // e.g. "GNU 12.2.0"
}
