{{ config(alias='marketing_customers') }}
-- Marketing's own `customers` (its relation is aliased; the asset key is prefixed by floe):
-- each shop customer with the best segment their lifetime value reaches.
with customers as (
    select * from {{ source('shop', 'customers') }}
),

segments as (
    select * from {{ ref('raw_segments') }}
),

ranked as (
    select
        c.customer_id,
        c.email,
        c.lifetime_value,
        s.segment,
        row_number() over (partition by c.customer_id order by s.rank) as pick
    from customers as c
    join segments as s on c.lifetime_value >= s.min_lifetime_value
)

select customer_id, email, lifetime_value, segment
from ranked
where pick = 1
