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


def test_libyaml_events_and_pyyaml_constructor_agree_on_every_document() -> None:
    # The fast path (libyaml events) hands anchors, tags and merges to the constructor
    # path; wherever it does not, the two must give the same keys or both fail.
    def keys(doc: str, fast: bool) -> object:
        try:
            return load_yaml_keys(doc, "keys.yaml", fast=fast)
        except KeyFileError as exc:
            assert "keys.yaml" in str(exc)
            return "error"

    differing = [doc for doc in DOCS if keys(doc, True) != keys(doc, False)]
    assert differing == []


def test_libyaml_path_covers_plain_documents_and_defers_the_rest() -> None:
    doc = "a:\n  b: [1, 0x10, yes, '010', ~]\n  c: {d: .inf}\nb: &x {e: 1}\n"
    assert load_yaml_keys(doc, "k.yaml") == {
        "/a/b/0": "1",
        "/a/b/1": "16",
        "/a/b/2": "true",
        "/a/b/3": "010",
        "/a/c/d": "+Inf",
        "/b/e": "1",
    }
    merged = "base: &b {x: 1}\nderived:\n  <<: *b\n  z: 2\n"
    assert load_yaml_keys(merged, "k.yaml") == {"/base/x": "1", "/derived/x": "1", "/derived/z": "2"}
    dup = "a: {x: 1}\na: {w: 2}\n"  # the later mapping replaces the earlier one whole
    assert load_yaml_keys(dup, "k.yaml") == load_yaml_keys(dup, "k.yaml", fast=False) == {"/a/w": "2"}
