"""``python -m zakotfs.cli``: the ``zakotfs`` command."""
from . import main

raise SystemExit(main())
