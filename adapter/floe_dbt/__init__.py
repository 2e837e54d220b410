"""floe.yaml -> dbt: profiles for the 7 targets (:mod:`floe_dbt.profiles`), ``floe compile``
(:mod:`floe_dbt.compile`) and the warehouse identity events carry (:mod:`floe_dbt.connection`).
Imports neither dagster nor the exporters; the ``floe`` command that uses it is ``floe_cli``."""
