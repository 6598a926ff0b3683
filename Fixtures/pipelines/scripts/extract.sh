#!/bin/sh
# Writes one day of orders (deterministic for the partition) as CSV into the task's output directory.
set -eu
day="${CLEW_PARTITION%%T*}"
out="$CLEW_OUTPUT_DIR/orders.csv"
echo "id,day,customer,amount" > "$out"
i=1
while [ "$i" -le "$CLEW_PARAM_ROWS" ]; do
  echo "$day-$i,$day,c-$((i % 7)),$((i * 13 % 97)).50" >> "$out"
  i=$((i + 1))
done
echo "extracted $CLEW_PARAM_ROWS orders for $day"
echo "::set-variable name=rows::$CLEW_PARAM_ROWS"
