"""Key files flattened exactly as confd flattens them: against gopkg.in/yaml.v2 itself.

``data/yaml_golden.json`` holds what yaml.v2 (2.4.0, via scripts/confd_golden/yaml)
plus confd's ``nodeWalk`` make of every document in ``data/yaml_cases.json``: scalar
resolution (YAML 1.1 booleans, base prefixes, underscores, floats, overflow), keys
that are not strings (confd panics), tags, anchors and merges, and malformed files.
Where Go fails, muster must fail too; where Go succeeds, the keys must be identical.
"""

from __future__ import annotations

import json
from pathlib import Path

from muster.backends.yamlkeys import KeyFileError, load_yaml_keys

DATA = Path(__file__).parent / "data"
DOCS = json.loads((DATA / "yaml_cases.json").read_text(encoding="utf-8"))
GOLDEN = json.loads((DATA / "yaml_golden.json").read_text(encoding="utf-8"))


def test_every_document_flattens_as_confd_does() -> None:
    assert len(DOCS) == len(GOLDEN) > 500
    mismatches = []
    for doc, want in zip(DOCS, GOLDEN, strict=True):
        try:
            got: dict[str, object] = {"keys": load_yaml_keys(doc, "keys.yaml")}
        except KeyFileError as exc:
            assert "keys.yaml" in str(exc), "errors name the file"
            got = {"err": True}
        expected: dict[str, object] = {"err": True} if "err" in want else {"keys": want.get("keys") or {}}
        if got != expected:
            mismatches.append((doc, got, want))
    assert mismatches == []
    assert sum(1 for w in GOLDEN if "err" in w) > 20  # the failures are covered too
