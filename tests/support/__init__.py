"""What the tests and the benches share, one module per concern.

- :mod:`support.environment`: the repository's paths, and :func:`~support.environment.need` for
  what a test needs from outside the repo (skips on a user's machine, fails under ``CI=true``);
- :mod:`support.data`: the one place test data is built (events, CompiledArtifacts), for tests
  and benches alike;
- :mod:`support.adapter`, :mod:`support.sidecar`, :mod:`support.lineage`: running the adapter,
  the sidecar process and the OpenLineage checks;
- :mod:`support.loopback`, :mod:`support.otlp_receivers`: receivers on 127.0.0.1;
- :mod:`support.plugins`: sinks a real ``floe-sidecar`` loads with
  ``--sink python:support.plugins:FACTORY`` (``tests/`` on its PYTHONPATH).

Nothing here is imported from ``conftest``: conftest holds fixtures only.
"""
