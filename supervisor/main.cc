// relaypro: one executable for every role. The supervisor side (the command line, `run`) and the
// worker side never link each other's code; only this file knows both.
#include <cstring>

#include "supervisor/cli.h"
#include "worker/worker_main.h"

int main(int argc, char** argv) {
    // A worker process, started by the supervisor with its channel on fd 3 (not for operators).
    if (argc == 2 && std::strcmp(argv[1], "worker") == 0) return relaypro::runWorker(relaypro::kWorkerChannelFd);
    return relaypro::runCli(argc, argv);
}
