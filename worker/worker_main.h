// A worker process (`relaypro worker`, started only by the supervisor): receives its settings,
// TLS material and listening sockets over the channel on `channelFd`, confines itself, serves,
// answers pings, applies new settings, drains and exits when told.
#pragma once

namespace relaypro {

inline constexpr int kWorkerChannelFd = 3;

int runWorker(int channelFd);

}  // namespace relaypro
