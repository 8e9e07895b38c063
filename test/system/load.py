#!/usr/bin/python3
"""Load for the system test, inside the container (Python standard library only).

  load.py echo --port 4222
      an echo server: what the console's port 4222 would be for NATS-like tunnels.
  load.py run --proxy HOST:PORT --cafile RELAY_CA --token-file FILE --target console.test:4222 \
              --short 4 --long 3 --stop FILE --out RESULT.json
      `short` threads open tunnels one after another (TLS to RelayPro, CONNECT with the Bearer
      token, 64 bytes echoed and checked, close); `long` threads each hold one tunnel and stream
      16 KiB chunks through it, checking every byte. When FILE appears, everything stops and
      RESULT.json gets the counts: attempted, failed (with reasons), cut (long tunnels that
      broke), and the bytes the long tunnels moved.
"""
import argparse
import json
import os
import socket
import socketserver
import ssl
import sys
import threading
import time


class Echo(socketserver.BaseRequestHandler):
    def handle(self):
        while True:
            data = self.request.recv(65536)
            if not data:
                return
            self.request.sendall(data)


class Server(socketserver.ThreadingMixIn, socketserver.TCPServer):
    daemon_threads = True
    allow_reuse_address = True


def tunnel(args, ctx):
    host, port = args.proxy.rsplit(":", 1)
    raw = socket.create_connection((host, int(port)), timeout=20)
    s = ctx.wrap_socket(raw, server_hostname=host)
    s.sendall(("CONNECT %s HTTP/1.1\r\nHost: %s\r\nProxy-Authorization: Bearer %s\r\n\r\n"
               % (args.target, args.target, args.token)).encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = s.recv(4096)
        if not chunk:
            raise IOError("closed before the CONNECT answer")
        head += chunk
        if len(head) > 16384:
            raise IOError("CONNECT answer too long")
    status = head.split(b"\r\n", 1)[0]
    if b" 200 " not in status + b" ":
        raise IOError("CONNECT answered " + status.decode(errors="replace"))
    return s


def exchange(s, payload):
    s.sendall(payload)
    got = b""
    while len(got) < len(payload):
        chunk = s.recv(len(payload) - len(got))
        if not chunk:
            raise IOError("tunnel closed mid-exchange")
        got += chunk
    if got != payload:
        raise IOError("echo differs")


def run(args):
    ctx = ssl.create_default_context(cafile=args.cafile)
    ctx.check_hostname = True
    lock = threading.Lock()
    counts = {"attempted": 0, "succeeded": 0, "failed": 0, "reasons": {}, "cut": 0,
              "longTunnels": args.long, "longBytes": 0}
    stop = threading.Event()

    def record_failure(kind, err):
        with lock:
            counts[kind] += 1
            reason = str(err)[:120]
            counts["reasons"][reason] = counts["reasons"].get(reason, 0) + 1

    def short():
        while not stop.is_set():
            with lock:
                counts["attempted"] += 1
            try:
                s = tunnel(args, ctx)
                exchange(s, os.urandom(64))
                s.close()
                with lock:
                    counts["succeeded"] += 1
            except Exception as e:  # every failure counts
                record_failure("failed", e)
            time.sleep(0.005)

    def long():
        try:
            s = tunnel(args, ctx)
        except Exception as e:
            record_failure("cut", "long tunnel could not open: %s" % e)
            return
        try:
            while not stop.is_set():
                exchange(s, os.urandom(16384))
                with lock:
                    counts["longBytes"] += 2 * 16384
                time.sleep(0.01)
            s.close()
        except Exception as e:
            record_failure("cut", e)

    threads = [threading.Thread(target=short) for _ in range(args.short)]
    threads += [threading.Thread(target=long) for _ in range(args.long)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + args.max_seconds
    while not os.path.exists(args.stop) and time.monotonic() < deadline:
        time.sleep(0.2)
        with lock:
            progress = json.dumps(counts)
        with open(args.out + ".progress.tmp", "w") as f:
            f.write(progress)
        os.rename(args.out + ".progress.tmp", args.out + ".progress")
    stop.set()
    for t in threads:
        t.join(30)
    with open(args.out + ".tmp", "w") as f:
        json.dump(counts, f)
    os.rename(args.out + ".tmp", args.out)


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="mode", required=True)
    e = sub.add_parser("echo")
    e.add_argument("--port", type=int, default=4222)
    r = sub.add_parser("run")
    r.add_argument("--proxy", required=True)
    r.add_argument("--cafile", required=True)
    r.add_argument("--token-file", required=True)
    r.add_argument("--target", required=True)
    r.add_argument("--short", type=int, default=4)
    r.add_argument("--long", type=int, default=3)
    r.add_argument("--stop", required=True)
    r.add_argument("--out", required=True)
    r.add_argument("--max-seconds", type=float, default=600)
    args = p.parse_args()
    if args.mode == "echo":
        with Server(("127.0.0.1", args.port), Echo) as server:
            print("listening", flush=True)
            server.serve_forever()
    else:
        with open(args.token_file) as f:
            args.token = f.read().strip()
        run(args)


if __name__ == "__main__":
    sys.exit(main())
