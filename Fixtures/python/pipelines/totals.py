"""Totals orders by region. `clew.trace` records every assignment in `totals_by_region` with its line;
the time, the exchange rate (an outside call) and the sample come back as recorded in a replay."""
import os

import clew


@clew.trace
def totals_by_region(orders, factor):
    totals = {}
    for order in orders:
        amount = round(order["amount"] * factor, 2)
        totals[order["region"]] = round(totals.get(order["region"], 0) + amount, 2)
    grand = round(sum(totals.values()), 2)
    return totals, grand


orders = [{"region": ["north", "south", "east"][i % 3], "amount": 10 + i} for i in range(30)]
factor = float(os.environ.get("CLEW_PARAM_FACTOR", "1"))
stamp = clew.now()
rate = clew.side_effect("exchange_rate", lambda: 0.9)
sample = clew.random()
totals, grand = totals_by_region(orders, round(factor * rate, 4))
clew.record("sampled", round(sample, 6))
clew.record("stamped_year", stamp.year)
clew.expect("positive", grand > 0, f"grand total {grand}")
clew.output({"grand": grand, "regions": len(totals)})
