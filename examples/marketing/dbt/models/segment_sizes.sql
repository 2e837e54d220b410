select
    segment,
    count(*) as customer_count,
    sum(lifetime_value) as lifetime_value
from {{ ref('customers') }}
group by segment
