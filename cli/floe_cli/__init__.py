"""The ``floe`` command: compile, validate, schema, prepare, run, dev, show.

It sits on top of every other package (``floe_core`` <- ``floe_dbt`` <- ``floe_dagster`` <-
``floe_cli``) and composes them; nothing below imports it. ``floe_cli.main`` is the entry point,
``floe_cli.commands`` the list of subcommands (cheap to import: each command loads dagster or
dbt only when it runs), ``floe_cli.args`` the arguments several commands share, and
:class:`~floe_cli.errors.CliError` a usage problem the command prints as one message.
"""
