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
from .models import family_of
from .online import ONLINE_STATUS
from .snapshot import read_published_manifest
from .store import SnapshotStore, as_store, snapshot_name

__all__ = ["builder_summary", "describe_age", "ranker_summary", "render_status"]

#: A builder status document older than this is stale (the builder stopped?).
_STALE_STATUS_SECONDS = 300.0


def ranker_summary(
    manifest: dict[str, Any] | None, problem: str | None = None
) -> dict[str, Any] | None:
    """Whether a learned ranker serves the snapshot, why or why not, what it was measured at and
    its most important features (None: the builder runs with ``--ranker off``). ``problem``:
    why a server does not use the snapshot's ranker (it could not be loaded)."""
    section = (manifest or {}).get("ranker")
    if not isinstance(section, dict):
        return None
    summary = {
        "serves": bool(section.get("serves")) and problem is None,
        "reason": problem or section.get("reason"),
        "candidates": section.get("candidates"),
        "objective": section.get("objective"),
        "ndcg_at_10": section.get("ndcg_at_10"),
        "against_first_stage": section.get("against_first_stage"),
        # largest first (a manifest's JSON keeps its keys sorted by name)
        "importances": dict(
            sorted((section.get("importances") or {}).items(), key=lambda pair: -float(pair[1]))[:5]
        ),
        "trained_at": section.get("trained_at"),
    }
    return {k: v for k, v in summary.items() if v is not None}


def _ranker_line(manifest: dict[str, Any]) -> list[str]:
    summary = ranker_summary(manifest)
    if summary is None:
        return []
    top = ", ".join(f"{k} {v:.0%}" for k, v in (summary.get("importances") or {}).items())
    return [
        f"Ranker       {'serves' if summary['serves'] else 'does not serve'}: "
        f"{summary.get('reason')}" + (f"; features by gain: {top}" if top else "")
    ]


def builder_summary(
    manifest: dict[str, Any] | None, status: dict[str, Any] | None
) -> dict[str, Any]:
    """Settings, quality gate and self-tuning, from the serving manifest and the builder's live
    status document (preferred while fresh: it knows about refusals and running sessions)."""
    manifest = manifest or {}
    now = time.time()
    age = None
    if status is not None and isinstance(status.get("updated_at"), int | float):
        age = now - float(status["updated_at"])
    live = (
        status if status is not None and age is not None and age < _STALE_STATUS_SECONDS else None
    )
    counters = manifest.get("builder") or {}
    quality = manifest.get("quality") or {}
    family = family_of(manifest) if manifest else None
    settings: dict[str, Any] = {
        "family": family,
        "params": manifest.get("params"),
        "source": manifest.get("params_source", "default"),
        "pinned": manifest.get("pinned", []),
    }
    live_model = (live or {}).get("model") or {}
    if live is not None and (
        live.get("params") != manifest.get("params") or live_model.get("family", family) != family
    ):
        settings["next"] = {
            "family": live_model.get("family", "als"),
            "params": live.get("params"),
            "source": live.get("params_source"),
        }
    if live is not None and isinstance(live.get("gate"), dict):
        gate = dict(live["gate"])
        last = gate.get("last") or {}
    else:
        gate = {
            "enabled": bool(quality) or None,
            "consecutive_refusals": 0,
            "refusals": counters.get("quality_rejections", 0),
            "forced_publications": counters.get("forced_publications", 0),
            "abstentions": counters.get("gate_abstentions", 0),
        }
        last = quality
    gate["last"] = (
        {k: last.get(k) for k in ("decision", "reason", "held_out_events")} if last else None
    )
    if live is not None and isinstance(live.get("tuning"), dict):
        tuning = dict(live["tuning"])
    else:
        state = "off" if manifest.get("tune") is False else "unknown"
        tuning = {"state": state, "last": manifest.get("tuning")}
    last_session = tuning.get("last")
    if isinstance(last_session, dict):
        tuning["last"] = {
            k: last_session.get(k)
            for k in ("adopted", "reason", "trials", "pruned", "seconds", "best", "started_at")
        }
        tuning["trail"] = last_session.get("trail", [])[:5]
    live_counters = live.get("counters") if live is not None else None
    failures = live_counters if isinstance(live_counters, dict) else counters
    return {
        "settings": settings,
        "gate": gate,
        "tuning": tuning,
        "failures": {
            key: int(failures.get(key) or 0)
            for key in ("retrains_failed", "publication_failures", "quarantined_snapshots")
        },
        "backlog": live.get("backlog") if live is not None else None,
        "builder_seen_seconds_ago": None if age is None else round(age, 1),
    }


def online_summary(
    document: dict[str, Any] | None,
    n_items: int,
    *,
    logging_to: str | None = None,
    experiment: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Live quality for people and the page, from the monitor's document: totals (exposures,
    hits, hit rate) for the last hour and per period, per arm and per model version, coverage of
    the catalogue, the last hour minute by minute, and the experiment's verdict."""
    live = (document or {}).get("live") or {}
    periods = live.get("periods") or {}
    hour = periods.get("1h") or {}
    age = None
    if document is not None and isinstance(document.get("updated_at"), int | float):
        age = round(time.time() - float(document["updated_at"]), 1)
    for period in periods.values():
        shown = period.get("distinct_items_shown")
        if shown is not None and n_items:
            # Items shown over the period include new items and ones an older model knew:
            # a share of today's model's items, at most all of them.
            period["coverage"] = min(1.0, shown / n_items)
    return {
        "logging_to": logging_to,
        "monitor_seen_seconds_ago": age,
        "exposures": hour.get("exposures", 0),
        "hits": hour.get("hits", 0),
        "hit_rate": hour.get("hit_rate"),
        "periods": periods,
        "minutes": live.get("minutes", []),
        "open_minutes": live.get("open_minutes"),
        "experiment": experiment,
    }


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


def _params_text(params: dict[str, Any] | None, family: str | None = "als") -> str:
    """A family and its settings for people (ALS: its four numbers, as always)."""
    if not params:
        return "-"
    if family in (None, "als"):
        return (
            f"factors {params.get('factors')}, regularization {params.get('regularization'):.3g}, "
            f"alpha {params.get('alpha'):.3g}, iterations {params.get('iterations')}"
        )
    values = ", ".join(
        f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}" for k, v in sorted(params.items())
    )
    return f"{family}: {values}"


def _builder_lines(summary: dict[str, Any]) -> list[str]:
    gate, tuning = summary["gate"], summary["tuning"]
    last = gate.get("last") or {}
    refusals = gate.get("consecutive_refusals") or 0
    judged = f"last: {last.get('decision')} - {last.get('reason')}" if last else "no judgement yet"
    lines = [f"Gate         {judged}" + (f"; {refusals} refusals in a row" if refusals else "")]
    session = tuning.get("last") or {}
    state = tuning.get("state", "unknown")
    text = f"Tuning       {state}"
    if session:
        text += (
            f"; last session {session.get('trials')} trials in {session.get('seconds', 0):.0f} s, "
            f"{'adopted' if session.get('adopted') else 'kept the settings'}: "
            f"{session.get('reason')}"
        )
    lines.append(text)
    pending = summary["settings"].get("next")
    if pending:
        lines.append(
            f"Next         {_params_text(pending.get('params'), pending.get('family'))} "
            f"({pending.get('source')}), "
            "from the next publication on"
        )
    return lines


def _online_line(document: dict[str, Any] | None) -> str:
    if document is None:
        return (
            "Online       no live quality yet (the builder's monitor writes it once answers "
            "are logged)"
        )
    periods = (document.get("live") or {}).get("periods") or {}
    parts = []
    for name in ("5m", "1h", "24h"):
        p = periods.get(name) or {}
        rate = p.get("hit_rate")
        parts.append(
            f"{name} {p.get('exposures', 0):,} answers, {p.get('hits', 0):,} hits"
            + ("" if rate is None else f" ({rate:.1%})")
        )
    text = "Online       " + "; ".join(parts)
    spec = document.get("experiment") or {}
    verdict = (document.get("experiments") or {}).get(spec.get("id") or "")
    if spec.get("mode") not in (None, "off") and verdict:
        text += (
            f"\nExperiment   {spec['mode']} {spec['id']}: {verdict.get('verdict')} "
            f"({verdict.get('reason')})"
        )
    return text


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
        m = read_published_manifest(store, version)
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
        + ")"
        + (
            "; its order is ignored (a bulk load in item-id order)"
            if (window.get("order") or {}).get("says_time") is False
            else ""
        ),
        f"Model        {family_of(m)}, trained in {m.get('training_seconds', 0):.2f} s; "
        f"{_params_text(params, family_of(m))} ({m.get('params_source', 'default')} settings)",
        *_builder_lines(builder_summary(m, store.read_status())),
        *_ranker_line(m),
        _online_line(store.read_document(ONLINE_STATUS)),
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
            failures = (answer.get("errors") or {}).get("server_errors") or {}
            lines.append(
                f"Server       {server}: serving v{serving}"
                + (" (behind the newest snapshot)" if serving and serving < version else "")
                + f"; {fresh.get('users', 0)} users with {fresh.get('events', 0)} fresh events; "
                + (
                    f"{sum(failures.values()):,} answered 500 ("
                    + ", ".join(f"{r} {n:,}" for r, n in sorted(failures.items()))
                    + "): see its log"
                    if failures
                    else "no 500s"
                )
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
