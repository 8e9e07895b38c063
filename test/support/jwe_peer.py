#!/usr/bin/python3
"""An independent peer for RelayPro's tokens: derives the Responder key from the CA bundle with
python3-cryptography's HKDF exactly as spec/protocol.md says, decrypts with python3-jwcrypto and
prints {"header": ..., "claims": ...}. Usage: jwe_peer.py CA-BUNDLE TOKEN"""
import base64
import json
import sys

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from jwcrypto import jwe, jwk


def b64d(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def main():
    bundle, token = sys.argv[1], sys.argv[2]
    key = serialization.load_pem_private_key(open(bundle, "rb").read(), None)
    der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.TraditionalOpenSSL,
                            serialization.NoEncryption())
    header = json.loads(b64d(token.split(".")[0]))
    prefix, day, rid64 = header["kid"].split(".")
    assert prefix == "rp1"
    rid = b64d(rid64)
    master = HKDF(hashes.SHA256(), 32, b"RelayPro token master v1", b"day:" + day.encode()).derive(der)
    k = HKDF(hashes.SHA256(), 32, b"RelayPro responder key v1", rid).derive(master)
    t = jwe.JWE()
    t.deserialize(token, key=jwk.JWK(kty="oct", k=base64.urlsafe_b64encode(k).rstrip(b"=").decode()))
    print(json.dumps({"header": header, "claims": json.loads(t.payload)}))


if __name__ == "__main__":
    main()
