"""The batch's change summary: from a whole diff, or from a change log's candidate keys."""

from __future__ import annotations

import random

from muster.daemon.report import change_summary


def test_candidates_give_the_summary_of_the_whole_diff() -> None:
    rng = random.Random(3)
    old = {f"/k/{i}": str(i) for i in range(50)}
    for _ in range(200):
        new = dict(old)
        touched = set()
        for _ in range(rng.randint(0, 6)):
            key = f"/k/{rng.randint(0, 60)}"
            touched.add(key)
            if key in new and rng.random() < 0.3:
                del new[key]
            else:
                new[key] = rng.choice(["same", str(rng.randint(0, 3)), new.get(key, "x")])
        assert change_summary(old, new, touched) == change_summary(old, new)
        old = new


def test_initial_and_bounded() -> None:
    assert change_summary(None, {"/a": "1"}, ["/a"]) == (1, "initial")
    count, text = change_summary(
        {}, {f"/k/{i:02d}": "v" for i in range(25)}, [f"/k/{i:02d}" for i in range(25)]
    )
    assert count == 25 and text.endswith(",...5 more") and text.startswith("+/k/00,")
