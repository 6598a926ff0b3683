-- Orders with a non-negative amount, typed.
select
    id as order_id,
    customer,
    cast(amount as decimal(10, 2)) as amount,
    cast(ordered_at as date) as ordered_on
from {{ ref('raw_orders') }}
where amount >= 0
