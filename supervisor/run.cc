#include "supervisor/run.h"

namespace relaypro {

int runService(ServiceOptions options, Environment env, Config config) {
    Service service(std::move(options), std::move(env), std::move(config));
    return service.run();
}

}  // namespace relaypro
