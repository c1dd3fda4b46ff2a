"""``diff_summary``'s common head and tail, found block by block, equal the plain bisection's."""

from __future__ import annotations

import random

import pytest

from muster.resources import sync


def _head(a: bytes, b: bytes, limit: int) -> int:
    return sync._bisect_common(lambda k: a[:k] == b[:k], limit)


def _tail(a: bytes, b: bytes, limit: int) -> int:
    return sync._bisect_common(lambda k: a[len(a) - k :] == b[len(b) - k :], limit)


@pytest.mark.parametrize("block", [1, 4, 1 << 14])
def test_blocks_agree_with_bisection(block: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sync, "_BLOCK", block)
    rng = random.Random(block)
    for _ in range(1500):
        a = bytearray(rng.choice(b"ab\n") for _ in range(rng.randint(0, 60)))
        b = bytearray(a)
        for _ in range(rng.randint(0, 3)):
            pos = rng.randint(0, len(b))
            b[pos : pos + rng.randint(0, 3)] = bytes(rng.choice(b"abc\n") for _ in range(rng.randint(0, 3)))
        limit = min(len(a), len(b))
        assert sync._common_head(bytes(a), bytes(b), limit) == _head(bytes(a), bytes(b), limit)
        for lim in range(limit + 1):
            assert sync._common_tail(bytes(a), bytes(b), lim) == _tail(bytes(a), bytes(b), lim)
