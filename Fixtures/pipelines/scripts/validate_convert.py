#!/usr/bin/env python3
"""Validates the day's CSV and converts it to JSON, reporting through clew's line protocol."""
import csv, json, os

src = os.environ["CLEW_INPUT_ORDERS_RAW"]
with open(src, newline="") as f:
    rows = list(csv.DictReader(f))
bad = [r["id"] for r in rows if float(r["amount"]) < 0]
day = os.environ["CLEW_PARTITION"][:10]
wrong_day = [r["id"] for r in rows if r["day"] != day]
print(f"::set-variable name=rows::{len(rows)}")
print(f"::set-variable name=total_amount::{round(sum(float(r['amount']) for r in rows), 2)}")
print(f"::expect name=amounts_non_negative passed={'false' if bad else 'true'}::{len(bad)} negative")
print(f"::expect name=rows_belong_to_partition passed={'false' if wrong_day else 'true'}::{len(wrong_day)} from other days")
with open(os.path.join(os.environ["CLEW_OUTPUT_DIR"], "orders.json"), "w") as f:
    json.dump([{**r, "amount": float(r["amount"])} for r in rows], f, sort_keys=True)
print(f"::set-output name=rows::{len(rows)}")
