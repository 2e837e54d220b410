"""floe.yaml -> dbt: profiles for the 7 targets (:mod:`floe_dbt.profiles`), ``floe compile``
(:mod:`floe_dbt.compile`), the warehouse identity events carry (:mod:`floe_dbt.connection`) and
the ``floe`` command (:mod:`floe_dbt.cli`). Imports neither dagster nor the exporters."""
