"""Benchmarks of event_lightning against tonic, norse and spikingjelly (``python -m bench``).

``run``: the command (which groups run, the table, the page); ``measure``: repeat settings and
timers; ``results``: the rows a group produces; ``table``: their formatting; ``goals``: the goals
checked against them; ``page``: docs/performance.md. Each ``rows_*`` module measures one or two
groups and imports only those shared pieces; ``configs`` and ``training`` build and time a
method from its config for ``rows_methods``.

``--gpu-preflight`` (``gpu_preflight``): every config on its stand-in with real shapes
(``config_cases``), run through the real entrypoint (``config_runs``, timed by ``step_clock``),
one process per config (``preflight_case``). The cross-method tests in ``tests/gpu`` use the same
case table and runner.
"""
