"""Names of datasets and jobs, chosen so that floe's lineage graph joins dbt-ol's.

Datasets follow the OpenLineage naming conventions as dbt-ol (openlineage-dbt) applies them to a
dbt profile: the namespace identifies the warehouse instance, the name is the relation's
``database.schema.identifier`` with empty parts dropped.

=========== ===================================== ===========================
target      namespace                             name
=========== ===================================== ===========================
duckdb      ``duckdb://<path from the profile>``  ``<db>.<schema>.<table>``
postgres    ``postgres://<host>:<port>``          ``<db>.<schema>.<table>``
redshift    ``redshift://<host>:<port>``          ``<db>.<schema>.<table>``
snowflake   ``snowflake://<account>`` (1)         ``<db>.<schema>.<table>``
bigquery    ``bigquery``                          ``<project>.<dataset>.<table>``
databricks  ``databricks://<host>``               ``<catalog>.<schema>.<table>``
spark       ``spark://<host>:<port>`` (2)         ``<schema>.<table>``
=========== ===================================== ===========================

(1) A legacy account locator gets its default region and cloud (``xy12345`` becomes
``xy12345.us-west-1.aws``, ``xy12345.us-east-1`` becomes ``xy12345.us-east-1.aws``); an
``org-account`` identifier is used as is. (2) Without a port in the connection: 443, dbt-spark's
own default (dbt-ol assumes 10001 for the thrift method: give thrift profiles an explicit port).

One deliberate difference: a dbt *source* whose ``identifier`` differs from its name is named after
the table it really reads (``identifier``); dbt-ol names it after the source's ``name``. Other
producers writing that table (Spark, Airflow, another dbt project's model) use the table's real
name, so the real identifier is what joins.

Job names per dbt node are dbt-ol's too: models and snapshots use its default (after-the-run) names
``<db>.<schema>.<package>.<name>`` plus ``.build.run`` / ``.build.snapshot`` under ``dbt build``
(``.snapshot`` under ``dbt snapshot``, nothing under ``dbt run``); seeds, tests and other nodes,
which dbt-ol only reports in its live mode, use that mode's name, the node's ``unique_id``. The dbt
invocation is ``dbt-run-<project>`` as in dbt-ol; the Dagster run is the Dagster job's name.
"""

from __future__ import annotations

from urllib.parse import quote

from floe_core.events import Connection, Invocation, Node, Relation

__all__ = [
    "DEFAULT_JOB_NAMESPACE",
    "dataset_name",
    "dataset_namespace",
    "datasource_uri",
    "dbt_command",
    "invocation_job_name",
    "node_job_name",
    "run_job_name",
    "snowflake_account",
]

#: dbt-ol's job namespace when ``OPENLINEAGE_NAMESPACE`` is not set: jobs of both tools then join.
DEFAULT_JOB_NAMESPACE = "dbt"

_DEFAULT_PORTS = {"postgres": 5432, "redshift": 5439}
_SPARK_DEFAULT_PORT = 443
# dbt subcommands that run nodes, in the order dbt-ol looks for them on the command line.
_DBT_COMMANDS = ("run", "seed", "snapshot", "test", "build", "retry")


def snowflake_account(account: str) -> str:
    """The account part of a Snowflake namespace, normalized as the naming conventions ask."""
    parts = account.split(".")
    locator = parts[0]
    if "-" in locator:  # org-account identifier: never carries region or cloud
        return locator
    if len(parts) == 1:
        return f"{locator}.us-west-1.aws"
    if len(parts) == 2:
        return f"{locator}.{parts[1]}.aws"
    return account


def dataset_namespace(connection: Connection) -> str:
    """The namespace of every dataset a dbt invocation reads or writes."""
    kind = connection.adapter_type or connection.target
    host = connection.host or "localhost"
    if kind == "duckdb":
        return f"duckdb://{connection.path or ':memory:'}"
    if kind in ("postgres", "redshift"):
        port = connection.port or _DEFAULT_PORTS[kind]
        return f"{kind}://{host}:{port}"
    if kind == "snowflake":
        return f"snowflake://{snowflake_account(connection.account or host)}"
    if kind == "bigquery":
        return "bigquery"
    if kind == "databricks":
        return f"databricks://{host}"
    if kind == "spark":
        port = connection.port or _SPARK_DEFAULT_PORT
        return f"spark://{host}:{port}"
    # Any other adapter: scheme from its type, authority from what the connection names.
    authority = connection.host or connection.account or connection.project or connection.path
    if authority and connection.port:
        authority = f"{authority}:{connection.port}"
    return f"{kind}://{authority}" if authority else kind


def datasource_uri(namespace: str) -> str:
    """The namespace as a valid URI (the dataSource facet's ``uri`` must be one).

    Characters a URI cannot hold (spaces in a DuckDB path, say) are percent-encoded; the namespace
    itself stays as dbt-ol writes it, so datasets still join.
    """
    return quote(namespace, safe=":/?#[]@!$&'()*+,;=-._~%")


def dataset_name(relation: Relation) -> str:
    return ".".join(
        part for part in (relation.database, relation.schema, relation.identifier) if part
    )


def dbt_command(invocation: Invocation) -> str | None:
    """The dbt subcommand of an invocation (``build``, ``run``...), as dbt-ol detects it."""
    tokens = set(invocation.command)
    return next((command for command in _DBT_COMMANDS if command in tokens), None)


def node_job_name(node: Node, command: str | None) -> str:
    prefix = f"{node.resource_type}."
    if node.resource_type in ("model", "snapshot") and node.unique_id.startswith(prefix):
        relation = node.relation or Relation(identifier="")
        base = ".".join(
            part
            for part in (relation.database, relation.schema, node.unique_id[len(prefix) :])
            if part
        )
        if node.resource_type == "model":
            return base + (".build.run" if command == "build" else "")
        return base + (".build.snapshot" if command == "build" else ".snapshot")
    return node.unique_id


def invocation_job_name(invocation: Invocation) -> str:
    return f"dbt-run-{invocation.project_name}"


def run_job_name(job_name: str) -> str:
    """The Dagster run's job: Dagster's own job name (``__ASSET_JOB`` when ad hoc)."""
    return job_name
