#!/usr/bin/env python3
"""Check a Clew inclusion or consistency proof without Clew (RFC 9162, sections 2.1.3.2 and 2.1.4.2).

Usage:
  clew proof inclusion 42 --json | tools/verify_proof.py
  clew proof consistency 10 20 --json | tools/verify_proof.py
Optionally pass the event's canonical bytes (hex) with --canonical HEX to check the leaf hash too.
Exit status 0 when the proof checks, 1 when it does not.
"""
import hashlib
import json
import sys


def node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def verify_inclusion(p: dict) -> bool:
    index, size = p["leaf_index"], p["tree_size"]
    if index >= size:
        return False
    fn, sn, r = index, size - 1, bytes.fromhex(p["leaf_hash"])
    for h in p["path"]:
        h = bytes.fromhex(h)
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node(h, r)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node(r, h)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r.hex() == p["root_hash"]


def verify_consistency(p: dict) -> bool:
    m, n = p["old_size"], p["new_size"]
    old, new = bytes.fromhex(p["old_root"]), bytes.fromhex(p["new_root"])
    path = [bytes.fromhex(h) for h in p["path"]]
    if m > n:
        return False
    if m == n:
        return not path and old == new
    if m == 0:
        return not path
    if not path:
        return False
    if m & (m - 1) == 0:
        path.insert(0, old)
    fn, sn = m - 1, n - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr, sr = node(c, fr), node(c, sr)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node(sr, c)
        fn >>= 1
        sn >>= 1
    return fr == old and sr == new and sn == 0


def main() -> int:
    proof = json.load(sys.stdin)
    if "--canonical" in sys.argv:
        canonical = bytes.fromhex(sys.argv[sys.argv.index("--canonical") + 1])
        if hashlib.sha256(b"\x00" + canonical).hexdigest() != proof["leaf_hash"]:
            print("leaf hash does not match the canonical bytes")
            return 1
    ok = verify_inclusion(proof) if "leaf_hash" in proof else verify_consistency(proof)
    print("ok" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
