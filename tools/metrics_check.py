#!/usr/bin/env python3
"""Parses Prometheus exposition text (stdin) with the official client's parser and prints it as JSON.

usage: metrics_check.py < metrics.txt
prints: {"families": {NAME: {"type": TYPE, "help": HELP, "samples": [{"name", "labels", "value"}]}}}
Exits 1, naming the problem, when the text does not parse (the parser is strict about the format).
Needs prometheus-client (the `ops` venv of tools/producers.sh).
"""
import json
import sys

from prometheus_client.parser import text_string_to_metric_families


def main():
    text = sys.stdin.read()
    families = {}
    try:
        for f in text_string_to_metric_families(text):
            families[f.name] = {
                "type": f.type,
                "help": f.documentation,
                "samples": [{"name": s.name, "labels": dict(s.labels), "value": s.value} for s in f.samples],
            }
    except Exception as e:  # the parser raises ValueError and others on malformed text
        print(f"metrics_check: not valid exposition text: {e}", file=sys.stderr)
        sys.exit(1)
    print(json.dumps({"families": families}))


if __name__ == "__main__":
    main()
