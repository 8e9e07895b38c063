// relaypro: one executable for every role; the command line picks it (spec/cli.md).
#include "supervisor/cli.h"

int main(int argc, char** argv) {
    return relaypro::runCli(argc, argv);
}
