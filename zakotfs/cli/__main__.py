"""``python -m zakotfs.cli``: the ``zakotfs`` command."""
from . import entry

entry()
