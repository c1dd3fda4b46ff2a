"""confd conformance through ``muster confd -onetime -backend file``: EVERY ``confd-*`` case.

Each case runs exactly as tests/conformance/gotemplate/README.md ("confd cases") runs the real
confd binary: a fresh confdir with ``conf.d/case.toml`` (the case's ``resource.toml`` plus
``src``/``dest``), ``-config-file`` pointing at a missing file, ``env.json`` in the environment
and ``args.json`` appended. Success means exit 0 and ``out/result`` byte-identical to
``expected.out``; an ``expected.err`` case must exit non-zero and never create ``out/result``.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from muster.cli.main import main

CASES = Path(__file__).parent / "gotemplate" / "cases"
CONFD_CASES = sorted(p for p in CASES.iterdir() if p.name.startswith("confd-"))


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """``muster confd`` configures logging for the process; give later tests theirs back."""
    logger = logging.getLogger("muster")
    saved = (logger.handlers[:], logger.level, logger.propagate)
    yield
    logger.handlers[:], logger.level, logger.propagate = saved


def test_corpus_is_present() -> None:
    assert len(CONFD_CASES) >= 70


@pytest.mark.parametrize("case", CONFD_CASES, ids=[p.name for p in CONFD_CASES])
def test_confd_case(case: Path, tmp_path: Path) -> None:
    work = tmp_path / "dir"
    for sub in ("conf.d", "templates", "out"):
        (work / sub).mkdir(parents=True)
    shutil.copyfile(case / "template.tmpl", work / "templates" / "template.tmpl")
    result_path = work / "out" / "result"
    resource = (case / "resource.toml").read_bytes()
    if resource and not resource.endswith(b"\n"):
        resource += b"\n"
    (work / "conf.d" / "case.toml").write_bytes(
        resource + f'src = "template.tmpl"\ndest = "{result_path}"\n'.encode()
    )
    args = [
        "confd",
        "-onetime",
        "-backend",
        "file",
        "-file",
        str(case / "keys.yaml"),
        "-confdir",
        str(work),
        "-config-file",
        str(work / "none.toml"),
        "-log-level",
        "error",
    ]
    if (case / "args.json").exists():
        args += json.loads((case / "args.json").read_text(encoding="utf-8"))
    env: dict[str, str | None] = {"MUSTER_CONF_UNSET": None}
    if (case / "env.json").exists():
        env.update(json.loads((case / "env.json").read_text(encoding="utf-8")))
    result = CliRunner().invoke(main, args, env=env)
    if (case / "expected.err").exists():
        assert result.exit_code != 0, result.output
        assert not result_path.exists(), "a failed render must never create the dest"
    else:
        assert result.exit_code == 0, result.output
        assert result_path.read_bytes() == (case / "expected.out").read_bytes()
