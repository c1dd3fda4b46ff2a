"""The names that lived in the old ``muster.daemon`` module still import from it."""

from __future__ import annotations


def test_names_that_lived_in_the_old_daemon_module_still_import_from_it() -> None:
    # muster.daemon was one module until split by concept; callers
    # (cli.confd's ``daemon.run``, the tests) import these from it.
    from muster import daemon
    from muster.daemon import backend, core, main, report

    assert daemon.Daemon is core.Daemon
    assert daemon.minimal_prefixes is core.minimal_prefixes
    assert daemon.run is main.run
    assert daemon.BatchReport is report.BatchReport
    assert daemon.Failure is report.Failure
    assert daemon.create_backend is backend.create_backend
    assert daemon.close_backend is backend.close_backend
