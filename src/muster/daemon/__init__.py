"""The daemon: keep every template resource in step with the backend, as ``muster confd`` runs it.

Modules, by concept:

* ``core``: the ``Daemon`` (conf.d, one batch, the onetime/interval/watch modes; theory of
  operation there);
* ``report``: what a batch did (``BatchReport``, ``Failure``);
* ``views``: each key set's values, kept current from a backend's change log;
* ``heap``: the collector's pauses kept off the change path (``settle``);
* ``main``: ``run()``, from a ``Config`` to an exit code.

Opening and closing the backend a ``Config`` names lives in ``muster.daemon.backend``; it
is re-exported here for callers that used to find it in this module.
"""

from __future__ import annotations

from muster.daemon.backend import close_backend, create_backend
from muster.daemon.core import Daemon, Sink, minimal_prefixes
from muster.daemon.main import run
from muster.daemon.report import BatchReport, Failure

__all__ = [
    "BatchReport",
    "Daemon",
    "Failure",
    "Sink",
    "close_backend",
    "create_backend",
    "minimal_prefixes",
    "run",
]
