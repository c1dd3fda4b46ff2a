"""Incremental renders of templates calling the service functions equal full renders.

The service functions (``services``, ``servers``, ``routing``, ``route_conf``,
``route_balance``) are memoised reads whose index follows each change
(``muster.registry.live``). Random change sequences render the stock template (reload
plane) and smaller templates mixing service functions, roots and confd store reads, once
incrementally (the changed keys given, or diffed) and once from scratch, each with its
own panic guard on one fake clock (holds start and end alike); the bytes must agree at
every step. Hosts are IP addresses: the renderers resolve DNS names for real.
"""

from __future__ import annotations

import json
import logging
import random

import pytest

from muster.registry.guard import Guards, GuardSettings
from muster.resources.incremental import IncrementalRenderer
from muster.stack.stock import STOCK_TEMPLATE, stock_dir

NAMES = ["web", "Web", "api", "db", "a b", "cache", "img"]
HOSTS = ["10.0.0.1", "10.0.0.2", "10.0.0.3", "fe80::1", "bad host;"]
ROUTES = [
    '{"paths": ["/v1/"]}',
    '{"split": {"api": 10}}',
    '{"split": {"nowhere": 5}}',
    '{"balance": "least_conn"}',
    '{"hosts": ["a.example.com"], "paths": ["/"]}',
    "not json",
]
SMALL = [
    "{{range $n := services}}{{$n}}:{{range servers $n}}{{.Addr}}/{{.Weight}} {{end}}"
    '{{route_balance $n}}\n{{end}}{{if routing}}{{route_conf "http"}}{{route_conf "server"}}{{end}}',
    '{{range services "/services"}}{{with servers . "/services"}}{{len .}}{{else}}none{{end}},{{end}}'
    '|{{range services "/other"}}{{.}}={{len (servers . "/other")}};{{end}}',
    '{{range services}}{{.}}={{getv (printf "/services/%s/stray" .) "-"}}'
    "{{range $i, $s := servers .}}{{if $i}},{{end}}{{$s.ID}}{{end}};{{end}}",
    '{{define "svc"}}[{{.}}:{{range servers .}}{{.Host}}{{end}}]{{end}}'
    '{{range services}}{{template "svc" .}}{{end}}{{len services}}',
]


def _value(rng: random.Random) -> str:
    if rng.random() < 0.8:
        data: dict[str, object] = {"host": rng.choice(HOSTS), "port": rng.choice([80, 81])}
        if rng.random() < 0.2:
            data["weight"] = rng.choice([1, 3])
        return json.dumps(data)
    return rng.choice(["", "{", '{"host": "10.0.0.9"}'])


def _key(rng: random.Random) -> str:
    root = "/services" if rng.random() < 0.85 else "/other"
    name = rng.choice(NAMES)
    roll = rng.random()
    if roll < 0.8:
        return f"{root}/{name}/servers/{rng.choice('abcd')}"
    if roll < 0.9:
        return f"{root}/{name}/route"
    return f"{root}/{name}/stray"


def _set(rng: random.Random, values: dict[str, str], key: str) -> None:
    values[key] = rng.choice(ROUTES) if key.endswith("/route") else _value(rng)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _sequence(seed: int, source: bytes) -> None:
    rng = random.Random(seed)
    clock = Clock()
    settings = GuardSettings(grace=30.0, window=10.0)
    follower = IncrementalRenderer("t", source, "/", guards=Guards(settings, clock=clock))
    # max_changes=-1: every render starts over, the reference.
    full = IncrementalRenderer("t", source, "/", guards=Guards(settings, clock=clock), max_changes=-1)
    values: dict[str, str] = {}
    for _ in range(rng.randrange(0, 30)):
        _set(rng, values, _key(rng))
    for step in range(10):
        changed: list[str] = []
        for _ in range(rng.choice([0, 1, 1, 2, 4, 12])):
            if values and rng.random() < 0.4:
                key = rng.choice(sorted(values))
                del values[key]
            else:
                key = _key(rng)
                _set(rng, values, key)
            changed.append(key)
        if rng.random() < 0.3:
            clock.now += rng.choice([1.0, 15.0, 40.0])
        given = changed if rng.random() < 0.7 else None
        assert follower.render(values, given) == full.render(values), f"seed {seed} step {step}"


@pytest.mark.parametrize("which", range(len(SMALL)))
def test_small_templates(which: int) -> None:
    logging.disable(logging.WARNING)  # every bad entry is logged once per renderer
    try:
        for seed in range(150):
            _sequence(seed, SMALL[which].encode())
    finally:
        logging.disable(logging.NOTSET)


@pytest.mark.parametrize("block", range(4))
def test_stock_template(block: int) -> None:
    source = (stock_dir() / "templates" / STOCK_TEMPLATE).read_bytes()
    logging.disable(logging.WARNING)
    try:
        for seed in range(block * 40, block * 40 + 40):
            _sequence(seed, source)
    finally:
        logging.disable(logging.NOTSET)
