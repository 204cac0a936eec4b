"""``python -m ledgercore``: the same command line as the ``ledgercore`` console script."""

from .cli import main

raise SystemExit(main())
