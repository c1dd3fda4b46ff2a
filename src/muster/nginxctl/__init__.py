"""Drive an existing nginx safely: check a staged file within the whole config, reload and confirm.

``procs`` (the confirmed reload) and ``control`` (the whole-config check) are imported
directly: this package imports nothing itself, so ``python -m muster.nginxctl reload``
loads only what a reload needs.
"""

__all__: list[str] = []
