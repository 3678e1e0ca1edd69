#include "runtime/build_config.h"

namespace rnnkit {
const char* compiler_description() { return RNNKIT_COMPILER; }  // set by CMakeLists.txt
}
