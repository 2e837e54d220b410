{#- The source `web.events` stands for data loaded by another tool; this hook plays that tool. -#}
{% macro create_raw_web_events() %}
  {% if execute %}
    create schema if not exists {{ target.schema }}_web;
    create table if not exists {{ target.schema }}_web.events as
    select * from (values
      (1, 1, 'page_view', '2024-01-01 10:00:00'),
      (2, 1, 'add_to_cart', '2024-01-01 10:02:00'),
      (3, 2, 'page_view', '2024-01-02 11:00:00'),
      (4, 3, 'page_view', '2024-01-03 09:30:00'),
      (5, 3, 'checkout', '2024-01-03 09:41:00')
    ) as t(event_id, customer_id, event_type, occurred_at);
  {% endif %}
{% endmacro %}
