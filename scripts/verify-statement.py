#!/usr/bin/env python3
"""Verifies a signed statement offline: python3 verify-statement.py statement.json statement-keys.json

statement-keys.json is what /.well-known/statement-keys serves. A statement holds only strings, integers,
booleans, arrays and objects, so json.dumps with sorted keys and no spaces is its RFC 8785 canonical form.
Exits 0 and prints "valid" when the signature holds (revocation is checked online only)."""
import base64, json, sys
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

def b64url(s): return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))

doc = json.load(open(sys.argv[1], encoding="utf-8"))
keys = {k["kid"]: k for k in json.load(open(sys.argv[2], encoding="utf-8"))["keys"]}
statement = doc["statement"]
canonical = json.dumps(statement, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
key = Ed25519PublicKey.from_public_bytes(b64url(keys[statement["kid"]]["x"]))
key.verify(b64url(doc["signature"]), canonical)  # raises InvalidSignature when anything was changed
print("valid", statement["id"], statement["issued_at"])
