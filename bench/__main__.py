"""``python -m bench [--quick] [--only GROUP ...] [--case NAME ...]``: see :mod:`bench.run`."""

from bench.run import main

raise SystemExit(main())
