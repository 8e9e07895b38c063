#!/usr/bin/python3
"""A console for tests: the console API of spec/console-api.md over HTTPS on loopback.

Usage: console_sim.py --cert C --key K --state STATE.json --journal JOURNAL.jsonl [--port N]

Prints "listening <port>" on stdout once it accepts connections. The test steers it through
STATE.json, read on every request (missing members take the defaults below):

  {"securityToken": "st-9f3k2",                 # the relay credential verify and heartbeat accept
   "organizationId": 1,
   "responders": {"resp-A": "cred-A"},       # who verify says is valid, with which credential
   "verifyMode": "normal" | "unavailable" | "slow" | "revoked" | "wrongOrg" | "wrongId" | "garbage",
   "slowSeconds": 7}

Every request is appended to JOURNAL.jsonl as {"path", "authorization", "body"} so a test can
count calls (the relay's verify cache) and check what the relay sent. Stdlib only.
"""
import argparse
import http.server
import json
import os
import socketserver
import ssl
import sys
import threading
import time

DEFAULTS = {
    "securityToken": "st-9f3k2",
    "organizationId": 1,
    "responders": {},
    "verifyMode": "normal",
    "slowSeconds": 7,
}


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "ConsoleSim"

    def log_message(self, fmt, *args):  # quiet
        pass

    def state(self):
        s = dict(DEFAULTS)
        try:
            with open(self.server.state_path) as f:
                s.update(json.load(f))
        except FileNotFoundError:
            pass
        return s

    def answer(self, status, result=None, success=True, errors=None, raw=None):
        body = raw if raw is not None else json.dumps(
            {"success": success, "statusCode": status, "result": result, "errors": errors or []}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        self.journal(None)
        self.answer(200, {"page": self.path})

    def journal(self, body):
        entry = {"path": self.path, "authorization": self.headers.get("Authorization", ""),
                 "userAgent": self.headers.get("User-Agent", ""), "body": body}
        with self.server.lock, open(self.server.journal_path, "a") as f:
            f.write(json.dumps(entry) + "\n")

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        raw = self.rfile.read(length)
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        self.journal(body)
        s = self.state()
        auth = self.headers.get("Authorization", "")
        if self.path == "/api/public/relay-pro/responders/verify":
            mode = s["verifyMode"]
            if mode == "unavailable":
                return self.answer(503, None, success=False, errors=["maintenance"])
            if mode == "slow":
                time.sleep(s["slowSeconds"])
            if mode == "revoked" or auth != "Bearer " + s["securityToken"]:
                return self.answer(401, None, success=False, errors=["relay not known"])
            if mode == "garbage":
                return self.answer(200, raw=b"not json")
            if not isinstance(body, dict):
                return self.answer(400, None, success=False, errors=["bad body"])
            rid = body.get("responderId")
            valid = rid in s["responders"] and s["responders"][rid] == body.get("credential")
            if not valid:
                return self.answer(200, {"valid": False})
            org = s["organizationId"] + (1 if mode == "wrongOrg" else 0)
            rid_out = rid + "-other" if mode == "wrongId" else rid
            return self.answer(200, {"valid": True, "responderId": rid_out, "organizationId": org})
        self.answer(404, None, success=False, errors=["no such endpoint"])


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--cert", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--state", required=True)
    p.add_argument("--journal", required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    a = p.parse_args()
    srv = Server((a.host, a.port), Handler)
    srv.state_path = a.state
    srv.journal_path = a.journal
    srv.lock = threading.Lock()
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(a.cert, a.key)
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    print("listening", srv.server_address[1], flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
