with orders as (
    select * from {{ ref('orders') }}
),

per_customer as (
    select
        customer_id,
        count(*) as order_count,
        sum(amount) as lifetime_value,
        min(order_date) as first_order_date
    from orders
    group by customer_id
),

visits as (
    select customer_id, count(*) as web_event_count
    from {{ ref('stg_web_events') }}
    group by customer_id
)

select
    c.customer_id,
    c.first_name,
    c.email,
    coalesce(p.order_count, 0) as order_count,
    coalesce(p.lifetime_value, 0) as lifetime_value,
    p.first_order_date,
    coalesce(v.web_event_count, 0) as web_event_count
from {{ ref('stg_customers') }} as c
left join per_customer as p on p.customer_id = c.customer_id
left join visits as v on v.customer_id = c.customer_id
