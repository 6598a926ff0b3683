#!/usr/bin/env python3
"""Validate Clew's audit exports without Clew.

  tools/validate_exports.py openlineage FILE   each line an OpenLineage 2-0-2 RunEvent, every facet against
                                               its own schema (Fixtures/specs/openlineage, a copy of the spec, or --specs DIR)
  tools/validate_exports.py prov FILE          PROV-JSON structure (Fixtures/schemas/prov-json.schema.json),
                                               every reference resolves, and every event's canonical bytes hash
                                               to its leaf and its inclusion path reaches the ledger root
                                               (RFC 9162)
Exit status 0 when valid, 1 naming the first problem.
"""
import base64
import hashlib
import json
import os
import sys

import jsonschema

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from verify_proof import verify_inclusion  # noqa: E402  (RFC 9162 inclusion check, shared)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def fail(msg):
    print(f"invalid: {msg}")
    sys.exit(1)


def openlineage(path, specs):
    store = {}
    for base, _, files in os.walk(specs):
        for f in files:
            if f.endswith(".json") and "tests" not in base:
                with open(os.path.join(base, f)) as h:
                    s = json.load(h)
                if "$id" in s:
                    store[s["$id"]] = s
    main = store["https://openlineage.io/spec/2-0-2/OpenLineage.json"]
    resolver = jsonschema.RefResolver.from_schema(main, store=store)
    checker = jsonschema.FormatChecker()
    validator = jsonschema.Draft202012Validator({"$ref": "#/$defs/RunEvent", "$defs": main["$defs"]}, resolver=resolver, format_checker=checker)
    n = 0
    with open(path) as h:
        for i, line in enumerate(h, 1):
            if not line.strip():
                continue
            event = json.loads(line)
            for e in validator.iter_errors(event):
                fail(f"line {i}: {'/'.join(map(str, e.absolute_path))}: {e.message}")
            facets = list((event.get("run", {}).get("facets") or {}).items()) + list((event.get("job", {}).get("facets") or {}).items())
            for ds in event.get("inputs", []) + event.get("outputs", []):
                facets += list((ds.get("facets") or {}).items())
            for name, facet in facets:
                url = facet.get("_schemaURL", "")
                doc, _, pointer = url.partition("#")
                if doc not in store:
                    fail(f"line {i}: facet {name}: no schema {doc}")
                fresolver = jsonschema.RefResolver.from_schema(store[doc], store=store)
                sub = store[doc]
                for part in pointer.strip("/").split("/"):
                    sub = sub[part]
                for e in jsonschema.Draft202012Validator(sub, resolver=fresolver, format_checker=checker).iter_errors(facet):
                    fail(f"line {i}: facet {name}: {'/'.join(map(str, e.absolute_path))}: {e.message}")
            n += 1
    if n == 0:
        fail("no events")
    print(f"ok: {n} OpenLineage run events")


def prov(path):
    with open(os.path.join(ROOT, "Fixtures/schemas/prov-json.schema.json")) as h:
        schema = json.load(h)
    with open(path) as h:
        doc = json.load(h)
    for e in jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker()).iter_errors(doc):
        fail(f"{'/'.join(map(str, e.absolute_path))}: {e.message}")
    ids = set(doc.get("entity", {})) | set(doc.get("activity", {})) | set(doc.get("agent", {}))
    refs = ["prov:activity", "prov:entity", "prov:agent", "prov:plan", "prov:generatedEntity", "prov:usedEntity", "prov:informed", "prov:informant"]
    for rel in ["used", "wasGeneratedBy", "wasDerivedFrom", "wasAssociatedWith", "wasInformedBy"]:
        for rid, r in doc.get(rel, {}).items():
            for k in refs:
                if k in r and r[k] not in ids:
                    fail(f"{rel} {rid}: {k} {r[k]} is not declared")
    ledger = doc["entity"].get("clew:ledger")
    if not ledger:
        fail("no clew:ledger entity")
    size, root = ledger["clew:treeSize"], bytes.fromhex(ledger["clew:rootHash"])
    events = {k: v for k, v in doc["entity"].items() if k.startswith("clew:event/")}
    if not events:
        fail("no events")
    for k, e in events.items():
        leaf = hashlib.sha256(b"\x00" + base64.b64decode(e["clew:canonical"])).digest()
        if leaf.hex() != e["clew:leafHash"]:
            fail(f"{k}: canonical bytes do not hash to the leaf hash")
        proof = {"leaf_index": e["clew:leafIndex"], "tree_size": size, "leaf_hash": leaf.hex(), "path": e["clew:inclusionPath"], "root_hash": root.hex()}
        if not verify_inclusion(proof):
            fail(f"{k}: inclusion path does not reach the root")
    seqs = {int(k.split("/")[1]) for k in events}
    for section in ["entity", "activity"]:
        for k, v in doc.get(section, {}).items():
            if "clew:seq" in v and v["clew:seq"] not in seqs:
                fail(f"{k}: its event seq {v['clew:seq']} has no proof")
    print(f"ok: PROV-JSON, {len(ids)} elements, {len(events)} events proved into root {ledger['clew:rootHash'][:16]} of {size}")


if __name__ == "__main__":
    args = sys.argv[1:]
    specs = os.path.join(ROOT, "Fixtures", "specs", "openlineage")
    if "--specs" in args:
        i = args.index("--specs")
        specs = args[i + 1]
        del args[i:i + 2]
    if len(args) != 2 or args[0] not in ("openlineage", "prov"):
        print(__doc__)
        sys.exit(2)
    openlineage(args[1], specs) if args[0] == "openlineage" else prov(args[1])
