"""The confd corpus on a real store: what each store's case test shares.

Each ``confd-*`` case's ``keys.yaml`` is flattened as confd's file backend does, written to the
store under test, and rendered with ``muster confd -onetime -backend NAME``; the bytes must be
the file backend's (``expected.out``), or the run must fail where the case expects an error.
"""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from muster.backends.file import load_key_files
from muster.cli.main import main
from muster.errors import Error

CASES = Path(__file__).parent.parent / "conformance" / "gotemplate" / "cases"
CONFD_CASES = sorted(p for p in CASES.iterdir() if p.name.startswith("confd-"))
CASE_IDS = [p.name for p in CONFD_CASES]

# The file backend matches `keys` as plain string prefixes; etcd, Redis and ZooKeeper (in
# confd too) match the key and its subtree only, so /app does not pull in /application.
STRING_PREFIX_CASES = {"confd-keys-filter"}


def case_keys(case: Path, store: str) -> dict[str, str]:
    """The case's keys, or a skip naming why the case does not apply to ``store``."""
    if case.name in STRING_PREFIX_CASES:
        pytest.skip(f"the file backend's string-prefix key match differs from {store}'s by design")
    try:
        return dict(load_key_files([str(case / "keys.yaml")], "*"))
    except Error as exc:
        pytest.skip(f"keys.yaml cannot be expressed as {store} keys: {exc}")


async def render_case(case: Path, work: Path, backend: str, node: str) -> None:
    """``muster confd -onetime`` on the case's resource against ``node``; assert the result."""
    for sub in ("conf.d", "templates", "out"):
        (work / sub).mkdir(parents=True)
    shutil.copyfile(case / "template.tmpl", work / "templates" / "template.tmpl")
    result_path = work / "out" / "result"
    resource = (case / "resource.toml").read_bytes().rstrip(b"\n") + b"\n"
    (work / "conf.d" / "case.toml").write_bytes(
        resource + f'src = "template.tmpl"\ndest = "{result_path}"\n'.encode()
    )
    args = ["confd", "-onetime", "-backend", backend, "-node", node, "-confdir", str(work),
            "-config-file", str(work / "none.toml"), "-log-level", "error"]  # fmt: skip
    if (case / "args.json").exists():
        args += json.loads((case / "args.json").read_text(encoding="utf-8"))
    env: dict[str, str | None] = {"MUSTER_CONF_UNSET": None}
    if (case / "env.json").exists():
        env.update(json.loads((case / "env.json").read_text(encoding="utf-8")))
    # The command configures the ``muster`` logger: undo that for the tests after.
    logger = logging.getLogger("muster")
    saved = (logger.handlers[:], logger.level, logger.propagate)
    try:
        result = await asyncio.to_thread(CliRunner().invoke, main, args, env=env)
    finally:
        logger.handlers[:], logger.level, logger.propagate = saved
    if (case / "expected.err").exists():
        assert result.exit_code != 0, result.output
        assert not result_path.exists()
    else:
        assert result.exit_code == 0, result.output
        assert result_path.read_bytes() == (case / "expected.out").read_bytes()
