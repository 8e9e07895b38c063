#!/usr/bin/python3
"""A console for tests and the demo: spec/console-api.md over HTTPS, with its own test CA.

Usage: console_sim.py --dir DIR [--host 127.0.0.1] [--port 0] [--http-port 0]

In DIR it creates (once) a test CA and a server certificate signed by it for --host (and
localhost, console.test), with the openssl tool: DIR/ca.pem is what a relay's consoleCACert
trusts. It prints "listening <https-port> <http-port>" on stdout once both listeners accept.

HTTPS serves the console API and GET /api/app/check; plain HTTP (--http-port, off when absent)
serves a small page for every GET, so tunnels to the console's port 80 have a target.

The test steers it through DIR/state.json, re-read when it changes (missing members take the
defaults below):

  {"deploymentTokens": ["dt-Wq83nLp"], # register accepts these (Authorization: Bearer ...)
   "securityToken": "st-9f3k2",        # a relay credential accepted without registering here
   "organizationId": 1,
   "consoleCACert": "",                # returned by register
   "responders": {"resp-A": "cred-A7hQ"}, # who verify says is valid, with which credential
   "fleetPrefix": "fleet-",            # also valid: every <prefix>N with credential cred-N (a fleet
                                       # of 100,000 without a map as large: loadgen fleet)
   "verifyMode": "normal" | "unavailable" | "slow" | "revoked" | "wrongOrg" | "wrongId" | "garbage",
   "slowSeconds": 7,                   # for verifyMode slow, and delaySeconds for every API call
   "delaySeconds": 0,
   "failNext": 0,                      # the next N API calls (after this state was written) get 503
   "revoked": false,                   # heartbeat and verify answer 401
   "migration": null}                  # heartbeat's migration answer

Every request is appended to DIR/journal.jsonl as {"time", "path", "authorization", "userAgent",
"body"} so a test can count calls and check what the relay sent. Stdlib only.
"""
import argparse
import http.server
import json
import os
import secrets
import socketserver
import ssl
import subprocess
import sys
import threading
import time

DEFAULTS = {
    "deploymentTokens": ["dt-Wq83nLp"],
    "securityToken": "st-9f3k2",
    "organizationId": 1,
    "consoleCACert": "",
    "responders": {},
    "fleetPrefix": None,
    "verifyMode": "normal",
    "slowSeconds": 7,
    "delaySeconds": 0,
    "failNext": 0,
    "revoked": False,
    "migration": None,
}

API = "/api/public/relay-pro/"


class State:
    """state.json, re-read when its modification time changes; failNext counts down in memory."""

    def __init__(self, path):
        self.path = path
        self.lock = threading.Lock()
        self.mtime = None
        self.values = dict(DEFAULTS)
        self.fail_left = 0
        self.relays = {}  # securityToken -> relayId, for relays registered here
        self.next_relay_id = 3

    def current(self):
        with self.lock:
            try:
                mtime = os.stat(self.path).st_mtime_ns
            except FileNotFoundError:
                mtime = None
            if mtime != self.mtime:
                self.mtime = mtime
                self.values = dict(DEFAULTS)
                if mtime is not None:
                    with open(self.path) as f:
                        self.values.update(json.load(f))
                self.fail_left = int(self.values.get("failNext", 0))
            return dict(self.values)

    def take_failure(self):
        with self.lock:
            if self.fail_left > 0:
                self.fail_left -= 1
                return True
            return False

    def register(self):
        with self.lock:
            token = "st-" + secrets.token_hex(12)
            relay_id = self.next_relay_id
            self.next_relay_id += 1
            self.relays[token] = relay_id
            return relay_id, token


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "ConsoleSim"
    # The head and the body go out in two writes: with Nagle, the body waited for the client's
    # delayed ACK (~40 ms), which held a kept-alive connection to ~23 calls/s.
    disable_nagle_algorithm = True

    def log_message(self, fmt, *args):  # quiet
        pass

    def send_json(self, status, result=None, success=True, errors=None, raw=None):
        body = raw if raw is not None else json.dumps(
            {"success": success, "statusCode": status, "result": result, "errors": errors or []}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def journal(self, body):
        entry = {"time": time.time(), "path": self.path, "authorization": self.headers.get("Authorization", ""),
                 "userAgent": self.headers.get("User-Agent", ""), "body": body}
        with self.server.journal_lock, open(self.server.journal_path, "a") as f:
            f.write(json.dumps(entry) + "\n")

    def do_GET(self):
        self.journal(None)
        if self.server.plain:
            body = b"console page\n"
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        if self.path == "/api/app/check":
            return self.send_json(200, {"status": "ok"})
        self.send_json(200, {"page": self.path})

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        raw = self.rfile.read(length)
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        self.journal(body)
        st = self.server.state
        s = st.current()
        if s["delaySeconds"]:
            time.sleep(s["delaySeconds"])
        if self.path.startswith(API) and st.take_failure():
            return self.send_json(503, None, success=False, errors=["unavailable"])
        auth = self.headers.get("Authorization", "")
        token = auth[len("Bearer "):] if auth.startswith("Bearer ") else ""
        known_relay = token == s["securityToken"] or token in st.relays
        if self.path == API + "register":
            if token not in s["deploymentTokens"]:
                return self.send_json(401, None, success=False, errors=["deployment token not accepted"])
            if not isinstance(body, dict):
                return self.send_json(400, None, success=False, errors=["bad body"])
            relay_id, security = st.register()
            return self.send_json(200, {"relayId": relay_id, "securityToken": security,
                                        "consoleCACert": s["consoleCACert"]})
        if self.path == API + "heartbeat":
            if s["revoked"] or not known_relay:
                return self.send_json(401, None, success=False, errors=["relay not known"])
            return self.send_json(200, {"migration": s["migration"]})
        if self.path == API + "responders/verify":
            mode = s["verifyMode"]
            if mode == "unavailable":
                return self.send_json(503, None, success=False, errors=["maintenance"])
            if mode == "slow":
                time.sleep(s["slowSeconds"])
            if mode == "revoked" or s["revoked"] or not known_relay:
                return self.send_json(401, None, success=False, errors=["relay not known"])
            if mode == "garbage":
                return self.send_json(200, raw=b"not json")
            if not isinstance(body, dict):
                return self.send_json(400, None, success=False, errors=["bad body"])
            rid = body.get("responderId")
            valid = valid_responder(s, rid, body.get("credential"))
            if not valid:
                return self.send_json(200, {"valid": False})
            org = s["organizationId"] + (1 if mode == "wrongOrg" else 0)
            rid_out = rid + "-other" if mode == "wrongId" else rid
            return self.send_json(200, {"valid": True, "responderId": rid_out, "organizationId": org})
        self.send_json(404, None, success=False, errors=["no such endpoint"])


def valid_responder(s, rid, credential):
    """Whether verify accepts the pair: listed in "responders", or one of the fleet."""
    if not isinstance(rid, str):
        return False
    prefix = s["fleetPrefix"]
    if prefix and rid.startswith(prefix) and rid[len(prefix):].isdigit():
        return credential == "cred-" + rid[len(prefix):]
    return rid in s["responders"] and s["responders"][rid] == credential


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def make_pki(directory, host):
    """A test CA and a server certificate it signed, made once per folder."""
    ca_key, ca_pem = os.path.join(directory, "ca.key"), os.path.join(directory, "ca.pem")
    key, cert = os.path.join(directory, "server.key"), os.path.join(directory, "server.pem")
    if os.path.exists(cert):
        return cert, key
    def run(*args):
        subprocess.run(["openssl", *args], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "30",
        "-subj", "/CN=Console Simulator Test CA", "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign", "-keyout", ca_key, "-out", ca_pem)
    csr = os.path.join(directory, "server.csr")
    run("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-subj", "/CN=" + host,
        "-keyout", key, "-out", csr)
    ext = os.path.join(directory, "server.ext")
    san = "IP:" + host if host.replace(".", "").isdigit() or ":" in host else "DNS:" + host
    with open(ext, "w") as f:
        f.write("subjectAltName=%s,DNS:localhost,DNS:console.test,IP:127.0.0.1\n"
                "basicConstraints=critical,CA:FALSE\nextendedKeyUsage=serverAuth\n" % san)
    run("x509", "-req", "-in", csr, "-CA", ca_pem, "-CAkey", ca_key, "-CAcreateserial", "-days", "30",
        "-extfile", ext, "-out", cert)
    return cert, key


def serve(server):
    server.serve_forever()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--dir", required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--http-port", type=int, default=None)
    a = p.parse_args()
    os.makedirs(a.dir, exist_ok=True)
    cert, key = make_pki(a.dir, a.host)
    state = State(os.path.join(a.dir, "state.json"))
    journal = os.path.join(a.dir, "journal.jsonl")
    lock = threading.Lock()

    def make(port, plain):
        srv = Server((a.host, port), Handler)
        srv.state, srv.journal_path, srv.journal_lock, srv.plain = state, journal, lock, plain
        return srv

    https = make(a.port, False)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    # The handshake runs in the request thread: a silent client does not stall the listener.
    https.socket = ctx.wrap_socket(https.socket, server_side=True, do_handshake_on_connect=False)
    http_port = 0
    if a.http_port is not None:
        plain = make(a.http_port, True)
        http_port = plain.server_address[1]
        threading.Thread(target=serve, args=(plain,), daemon=True).start()
    print("listening", https.server_address[1], http_port, flush=True)
    serve(https)


if __name__ == "__main__":
    sys.exit(main())
