// kRelayProBinary (relay.h) for one test executable: its RELAYPRO_BINARY (test/CMakeLists.txt).
#include "test/support/relay.h"

namespace relaypro::testing {

const char* const kRelayProBinary = RELAYPRO_BINARY;

}  // namespace relaypro::testing
