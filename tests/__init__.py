"""aiscope's tests, one folder per part of ``src/aiscope`` (every folder a package, so
helpers import as ``tests.support.sdk_support`` and so on):

- ``tests/<part>/`` for ``src/aiscope/<part>/``: alerts, client, cost, instrument,
  integrations, metrics, resilience, server, testing, tracing;
- ``tests/core/`` for the top-level modules (record, scope, context, labels, names,
  logs, masking, sink, feedback, health, lifecycle);
- ``tests/package/`` for whole-package checks (docs, seeds, layers, imports, exported
  members, secrets, CLI, fork, memory bounds);
- ``tests/support/`` for helpers shared by several folders (no tests in it).
"""
