"""The demo's click model: simulated users who look at their answers and like what suits them.

A user of the synthetic hidden-taste model (user ``u<k>`` in taste group ``k % groups``) asks the
server for recommendations, likes each shown item of their own group with a probability that
falls with its position (``click_rate / (1 + position)``: position bias), and posts the likes
naming the answer (``recommendation_id``), so the live page's hit rate moves, and so does an
experiment's verdict when a challenger answers too. It talks HTTP only.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..synthetic import TasteModel

__all__ = ["clicks_main", "simulate_clicks", "taste_group"]


def _call(url: str, body: Any = None, timeout: float = 5.0) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())


def taste_group(taste: TasteModel, item: str) -> int | None:
    """The taste group of one of the model's items (``i<k>``); None for any other id (items an
    application added, ``sku-42``): no simulated user likes those."""
    if not item.startswith("i") or not item[1:].isdigit():
        return None
    return taste.item_group(item)


def simulate_clicks(
    server: str,
    taste: TasteModel,
    rng: np.random.Generator,
    *,
    answers: int,
    click_rate: float = 0.6,
    n: int = 10,
) -> tuple[int, int]:
    """Ask ``answers`` times for random users; post their likes. Returns (answers, likes)."""
    likes = []
    for _ in range(answers):
        user = taste.user_id(int(rng.integers(taste.users)))
        body = _call(f"{server}/recommend?user={user}&n={n}")
        group = taste.user_group(user)
        for position, entry in enumerate(body.get("items", [])):
            item = entry["item"]
            if taste_group(taste, item) == group and rng.random() < click_rate / (1 + position):
                likes.append(
                    {"user": user, "item": item, "recommendation_id": body["recommendation_id"]}
                )
    if likes:
        _call(f"{server}/interactions", likes)
    return answers, len(likes)


def clicks_main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Simulated users acting on the server's answers (the demo's click model)."
    )
    parser.add_argument("--server", default="http://127.0.0.1:8000")
    parser.add_argument("--rate", type=float, default=20.0, help="answers asked for a second")
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--items", type=int, default=1000)
    parser.add_argument("--groups", type=int, default=8)
    parser.add_argument("--click-rate", type=float, default=0.6)
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args(argv)
    taste = TasteModel(users=args.users, items=args.items, groups=args.groups)
    rng = np.random.default_rng(args.seed)
    stop = threading.Event()
    batch = max(1, int(args.rate))
    while not stop.is_set():
        started = time.monotonic()
        try:
            simulate_clicks(args.server, taste, rng, answers=batch, click_rate=args.click_rate)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            print(f"clicks: the server did not answer ({exc}); trying again", file=sys.stderr)
            stop.wait(2.0)
            continue
        stop.wait(max(0.0, 1.0 - (time.monotonic() - started)))
    return 0
