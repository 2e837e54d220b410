"""``dagster dev -m floe_dagster.definitions``: the dbt project of the compiled artifacts.

The artifacts come from ``FLOE_ARTIFACTS`` (default ``.floe/compiled_artifacts.json``, written by
``floe compile``); the dbt manifest from the path they name. Importing this module builds the
definitions, so import :func:`floe_dagster.assets.build_definitions` instead to build your own.
"""

from __future__ import annotations

import os

from floe_core.artifacts import ARTIFACTS_ENV, load_artifacts
from floe_core.layout import DEFAULT_ARTIFACTS_PATH
from floe_dagster.assets import build_definitions

__all__ = ["defs"]

defs = build_definitions(load_artifacts(os.environ.get(ARTIFACTS_ENV) or DEFAULT_ARTIFACTS_PATH))
