"""``recommender status``: the serving snapshot, the builder's counters and lag, in plain text."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from .errors import RecommenderError, SnapshotError
from .kafka import KafkaSettings
from .store import SnapshotStore, as_store, snapshot_name

__all__ = ["describe_age", "render_status"]


def describe_age(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _table(rows: list[list[str]]) -> list[str]:
    widths = [max(len(row[k]) for row in rows) for k in range(len(rows[0]))]
    return [
        "  ".join(
            cell.rjust(w) if k else cell.ljust(w)
            for k, (cell, w) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in rows
    ]


def _end_offsets(
    kafka: KafkaSettings, topic: str, positions: dict[int, int], *, timeout: float = 5.0
) -> dict[int, int]:
    """High watermarks as reported in fetch responses.

    A fetch at the builder's position makes the broker report the partition's high watermark;
    a ListOffsets query before any fetch under-reports on some brokers (the embedded Tansu).
    """
    from confluent_kafka import TopicPartition

    consumer = kafka.consumer(**{"fetch.wait.max.ms": 10})
    try:
        consumer.assign([TopicPartition(topic, p, offset) for p, offset in positions.items()])
        ends: dict[int, int] = {}
        deadline = time.monotonic() + timeout
        while len(ends) < len(positions) and time.monotonic() < deadline:
            consumer.consume(1000, timeout=0.2)
            for p in positions:
                high = consumer.get_watermark_offsets(TopicPartition(topic, p), cached=True)[1]
                if high >= 0:
                    ends[p] = high
        return ends
    finally:
        consumer.close()


def _server(url: str) -> dict[str, Any] | str:
    try:
        with urllib.request.urlopen(url.rstrip("/") + "/status", timeout=5) as response:
            data: dict[str, Any] = json.loads(response.read())
            return data
    except urllib.error.HTTPError as exc:
        return f"answered {exc.code}"
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return f"unreachable ({exc})"


def render_status(
    model_dir: SnapshotStore | Path | str,
    *,
    kafka: KafkaSettings | None = None,
    server: str | None = None,
) -> str:
    """A human-readable report; raises RecommenderError when there is nothing to report."""
    store = as_store(model_dir)
    snapshots = store.versions()
    if not snapshots:
        raise RecommenderError(
            f"no snapshot in {store.location} yet: is the builder running "
            "(recommender build TOPIC RETRAIN_FREQUENCY WINDOW_LENGTH --model-dir ...) and has it "
            "received RETRAIN_FREQUENCY events?"
        )
    version = snapshots[-1]
    try:
        m = store.read_manifest(version)
    except SnapshotError as exc:
        raise RecommenderError(str(exc)) from exc
    window, params, builder = m.get("window", {}), m.get("params", {}), m.get("builder", {})
    lo, hi = window.get("min_timestamp_ms"), window.get("max_timestamp_ms")
    span = describe_age((hi - lo) / 1000) if lo is not None and hi is not None else "-"
    rejected = builder.get("rejected", {})
    rejected_text = ", ".join(f"{k} {v}" for k, v in sorted(rejected.items())) or "none"
    lines = [
        f"Snapshot     {snapshot_name(version)} in {store.location} ({len(snapshots)} kept), "
        "created "
        f"{m.get('created_at_iso')} ({describe_age(time.time() - m['created_at'])} ago)",
        f"Topic        {m.get('topic')}",
        f"Window       {window.get('events', 0):,} events, {window.get('users', 0):,} users, "
        f"{window.get('items', 0):,} items, span {span} (max {window.get('max_events', 0):,} events"
        + (f", {window['max_age_seconds']:.0f} s" if window.get("max_age_seconds") else "")
        + ")",
        f"Training     {m.get('training_seconds', 0):.2f} s; factors {params.get('factors')}, "
        f"regularization {params.get('regularization')}, alpha {params.get('alpha')}, "
        f"iterations {params.get('iterations')}",
        f"Builder      consumed {builder.get('consumed', 0):,}, accepted "
        f"{builder.get('accepted', 0):,}, malformed: {rejected_text}; retrains "
        f"{builder.get('retrains_published', 0)} published, {builder.get('retrains_failed', 0)} "
        "failed (since the builder started)",
    ]
    if server:
        answer = _server(server)
        if isinstance(answer, str):
            lines.append(f"Server       {server}: {answer}")
        else:
            serving = answer.get("model", {}).get("version")
            fresh = answer.get("fresh", {})
            lines.append(
                f"Server       {server}: serving v{serving}"
                + (" (behind the newest snapshot)" if serving and serving < version else "")
                + f"; {fresh.get('users', 0)} users with {fresh.get('events', 0)} fresh events"
            )
    positions = m.get("partitions", {})
    if positions:
        rows = [["partition", "window start", "next offset", "end offset", "lag"]]
        ends: dict[int, int] = {}
        note = ""
        if kafka is not None:
            try:
                ends = _end_offsets(
                    kafka, m["topic"], {int(p): pos["next_offset"] for p, pos in positions.items()}
                )
            except Exception as exc:  # report what we have; the lag column stays empty
                note = f"(could not read end offsets: {exc}; check --bootstrap-servers)"
        for p, pos in sorted(positions.items(), key=lambda kv: int(kv[0])):
            end = ends.get(int(p))
            lag = "-" if end is None else f"{max(0, end - pos['next_offset']):,}"
            rows.append(
                [
                    p,
                    f"{pos['window_start']:,}",
                    f"{pos['next_offset']:,}",
                    "-" if end is None else f"{end:,}",
                    lag,
                ]
            )
        lines += ["", *_table(rows)]
        if note:
            lines.append(note)
        elif kafka is None:
            lines.append("(pass --bootstrap-servers to see the builder's lag)")
    return "\n".join(lines)
