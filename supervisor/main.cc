// relaypro: one executable for every role. The supervisor side (the command line, `run`) and the
// worker side never link each other's code; only this file knows both.
#include <openssl/crypto.h>
#include <sodium.h>

#include <cstdio>
#include <cstring>

#include "supervisor/cli.h"
#include "worker/worker_main.h"

int main(int argc, char** argv) {
    // Before anything else, in every role. RelayPro's TLS settings are its own: no openssl.cnf of
    // the system (OPENSSL_CONF, the distribution's file, crypto policies) applies; the packaged
    // binary's OpenSSL is not the system's, and a file written for another build could change or
    // break it.
    OPENSSL_init_crypto(OPENSSL_INIT_NO_LOAD_CONFIG, nullptr);
    // libsodium picks its implementations and opens its randomness source here, while a worker
    // can still open /dev/urandom (kernels without getrandom, before 3.17; the sandbox comes later).
    if (sodium_init() < 0) {
        std::fputs("relaypro: libsodium cannot initialise\n", stderr);
        return 1;
    }
    // A worker process, started by the supervisor with its channel on fd 3 (not for operators).
    if (argc == 2 && std::strcmp(argv[1], "worker") == 0) return relaypro::runWorker(relaypro::kWorkerChannelFd);
    return relaypro::runCli(argc, argv);
}
