"""confd's template functions through ``muster render``, against Go renderings of confd's
function map (scripts/template_golden/confd.go).

confd itself is not installed here, so these goldens come from a Go program that
binds confd 0.17's function map (template_funcs.go, memkv's store functions) onto the
same Go standard-library calls confd makes, keeping their Go result types: nil
slices, append-grown capacities, the named ``memkv.KVPairs``. Only host-independent
functions are used, and the key files are nested JSON objects of strings, so that no
YAML scalar rule is involved (``scripts/gen-template-goldens`` writes the goldens).
Each case also has the corpus's confd layout: ``keys.yaml`` (the same document: JSON
is YAML) and ``resource.toml``, which is what muster renders, so the cases can join
the conformance corpus as they are.
Cases in ``KNOWN_MISMATCHES`` are bugs not fixed yet, as strict xfails.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from muster.render_cmd import render

CASES = sorted(p for p in (Path(__file__).parent / "confd_funcs").iterdir() if (p / "template.tmpl").exists())

_CAP = (
    "confdfuncs.py/store.py: Go's slice builtin bounds indexes by cap(), and confd's getvs/ls/lsdir/gets/seq "
    "build their results by append (len 3 -> cap 4); muster's GoSlice results have cap == len"
)
KNOWN_MISMATCHES: dict[str, str] = {
    "lookup-filtered-empty-is-nil": (
        "confdfuncs.py lookupIPV4/lookupIPV6 (and lookupIP on error): confd returns a nil []string "
        "(var addresses []string); %#v prints []string(nil) and eq ... nil is true"
    ),
    "datetime-methods-stable": (
        "gotime.py GoTime lacks time.Time methods templates call: Location, IsZero, AddDate, Before, "
        "After, Truncate (also Add, Sub, Equal, In, Round; Zone/Date/Clock should fail as multi-result)"
    ),
    "gets-type-name": (
        "store.py KVPairs: gets returns the named type memkv.KVPairs, which %T and %#v print as "
        "memkv.KVPairs; muster prints []memkv.KVPair"
    ),
    "slice-getvs-within-cap": _CAP,
    "slice-ls-within-cap": _CAP,
    "slice-gets-within-cap": _CAP,
    "slice-seq-within-cap": _CAP,
    "seq-empty-is-nil": (
        "confdfuncs.py seq: confd's seq returns a nil []int when first > last; %#v prints []int(nil)"
    ),
    "json-null-is-nil-map": (
        "confdfuncs.py json/jsonArray: Unmarshal of null leaves confd's result nil; %#v prints "
        "map[string]interface {}(nil) / []interface {}(nil)"
    ),
}


def _param(case: Path) -> Any:
    reason = KNOWN_MISMATCHES.get(case.name)
    marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
    return pytest.param(case, id=case.name, marks=marks)


def test_cases_are_present() -> None:
    assert len(CASES) >= 5


@pytest.mark.parametrize("case", [_param(p) for p in CASES])
def test_confd_funcs_case(case: Path) -> None:
    assert (case / "keys.yaml").read_bytes() == (case / "keys.json").read_bytes()
    result = CliRunner().invoke(render, [str(case / "template.tmpl"), "--keys", str(case / "keys.yaml")])
    if (case / "expected.err").exists():
        assert result.exit_code == 1, result.output
        assert result.stdout_bytes == b""
    else:
        assert result.exit_code == 0, result.stderr_bytes.decode("utf-8", "replace")
        assert result.stdout_bytes == (case / "expected.out").read_bytes()
