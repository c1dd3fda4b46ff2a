"""The ``muster`` command: one click group (``main``), one module per command.

confd's Go-style flag parser stays only behind ``muster confd`` (confd's own flags).
"""

from muster.cli.main import main

__all__ = ["main"]
