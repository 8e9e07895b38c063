// An owning jansson handle for tests.
#pragma once

#include <jansson.h>

#include <memory>

namespace relaypro::testing {

struct JsonFree {
    void operator()(json_t* j) const { json_decref(j); }
};
using Json = std::unique_ptr<json_t, JsonFree>;

}  // namespace relaypro::testing
