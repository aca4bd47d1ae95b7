"""``python -m bench [--quick] [--only GROUP ...]``: see :mod:`bench.run`."""

from bench.run import main

raise SystemExit(main())
