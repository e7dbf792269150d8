"""``recommender experiment``: show, start and stop a server's online experiment.

A thin client of the server's ``GET /experiments`` and ``POST /experiments`` (see
:mod:`recommender.server.experiments`): a start or a stop goes through the experiments topic to
every replica when the server follows one, else to that process only, and the output says which.
Operator mistakes (no server there, a missing token, no challenger) are one line and exit 2.
"""

from __future__ import annotations

import argparse
import json
import os
import urllib.error
import urllib.request
from typing import Any

from ..errors import RecommenderError
from .options import add_common

__all__ = ["add_experiment_command", "render_experiment"]


def add_experiment_command(commands: Any) -> None:
    parser = commands.add_parser(
        "experiment",
        help="show, start or stop a server's online experiment (champion vs challenger)",
        description="Show the running experiment and its verdict, or start or stop one at run "
        "time (every replica follows the experiments topic). The server needs "
        "--challenger-model-dir to start one.",
    )
    parser.add_argument(
        "action",
        choices=["show", "start", "stop"],
        help="show (default output: the verdict and each arm), start MODE, stop",
    )
    parser.add_argument(
        "mode",
        nargs="?",
        choices=["interleave", "ab"],
        help="with start: team-draft interleaving, or A/B by a stable hash of the user",
    )
    parser.add_argument(
        "--share", type=float, default=0.5, help="A/B: the challenger's share of users (0.5)"
    )
    parser.add_argument("--server", default="http://127.0.0.1:8000", help="a server's base URL")
    parser.add_argument(
        "--api-token",
        default=os.environ.get("RECOMMENDER_API_TOKEN"),
        help="the server's bearer token, for start and stop (default: $RECOMMENDER_API_TOKEN)",
    )
    parser.add_argument("--json", action="store_true", help="print the server's JSON as it is")
    add_common(parser)
    parser.set_defaults(run=run_experiment)


def run_experiment(args: argparse.Namespace) -> int:
    if args.action == "start" and args.mode is None:
        raise RecommenderError("experiment start needs a mode: interleave or ab")
    if args.action != "start" and args.mode is not None:
        raise RecommenderError(f"experiment {args.action} takes no mode (only start does)")
    if not 0 < args.share < 1:
        raise RecommenderError("--share must be above 0 and below 1")
    base = args.server.rstrip("/")
    if args.action != "show":
        body = {"mode": "off" if args.action == "stop" else args.mode, "share": args.share}
        answer = _call(f"{base}/experiments", args.api_token, body)
        if args.json:
            print(json.dumps(answer, indent=2))
            return 0
        spec = answer.get("experiment") or {}
        where = (
            "every replica (through the experiments topic)"
            if answer.get("replicas") == "all"
            else "this server process only (it follows no experiments topic)"
        )
        did = "stopped the experiment" if args.action == "stop" else f"started {spec.get('id')}"
        print(f"{did} ({spec.get('mode')}) on {where}")
        return 0
    status = _call(f"{base}/experiments", args.api_token)
    print(json.dumps(status, indent=2) if args.json else render_experiment(status))
    return 0


def render_experiment(status: dict[str, Any]) -> str:
    """``GET /experiments`` for people: the experiment, both models, the verdict and arms."""
    champion = status.get("champion") or {}
    challenger = status.get("challenger") or {}
    store = status.get("challenger_store")
    lines = [
        f"Champion     v{champion.get('version')} ({champion.get('family')})"
        if champion
        else "Champion     no model yet"
    ]
    problem = status.get("challenger_problem")
    if challenger:
        version, family = challenger.get("version"), challenger.get("family")
        lines.append(f"Challenger   v{version} ({family}) from {store}")
        if problem:
            lines.append(f"             {problem}")
    elif store:
        lines.append(f"Challenger   not answering: {problem or f'not loaded yet from {store}'}")
    else:
        lines.append("Challenger   none (start the server with --challenger-model-dir)")
    spec = status.get("experiment")
    if not spec:
        lines.append("Experiment   off")
        return "\n".join(lines)
    share = f", challenger share {spec.get('share'):.0%}" if spec.get("mode") == "ab" else ""
    lines.append(f"Experiment   {spec.get('mode')} {spec.get('id')}{share}")
    results = status.get("results") or {}
    lines.append(
        f"Verdict      {status.get('verdict', 'undecided')}"
        + (f": {results['reason']}" if results.get("reason") else " (no results yet)")
    )
    arms = results.get("arms") or {}
    if spec.get("mode") == "ab":
        for arm in ("champion", "challenger"):
            a = arms.get(arm) or {}
            rate = a.get("rate")
            lines.append(
                f"  {arm:<11}{a.get('users', 0):,} users, {a.get('exposures', 0):,} answers, "
                f"{a.get('hits', 0):,} hits" + ("" if rate is None else f" ({rate:.1%})")
            )
    elif arms:
        lines.append(
            f"  {arms.get('impressions', 0):,} interleaved answers, "
            f"{arms.get('impressions_with_a_like', 0):,} with a like: challenger won "
            f"{(arms.get('challenger') or {}).get('wins', 0):,}, champion "
            f"{(arms.get('champion') or {}).get('wins', 0):,}, ties {arms.get('ties', 0):,}"
        )
    return "\n".join(lines)


def _call(url: str, token: str | None, body: dict[str, Any] | None = None) -> dict[str, Any]:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(
        url,
        data=None if body is None else json.dumps(body).encode(),
        headers=headers,
        method="GET" if body is None else "POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=15) as response:
            return dict(json.loads(response.read()))
    except urllib.error.HTTPError as exc:
        try:
            message = json.loads(exc.read() or b"{}").get("message") or exc.reason
        except ValueError:
            message = exc.reason
        if exc.code in (401, 403):
            raise RecommenderError(
                f"the server refused ({exc.code}: {message}): pass --api-token (or set "
                "$RECOMMENDER_API_TOKEN) with the server's token"
            ) from None
        raise RecommenderError(f"the server answered {exc.code}: {message}") from None
    except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
        reason = getattr(exc, "reason", exc)
        raise RecommenderError(
            f"cannot reach a server at {url.rsplit('/', 1)[0]} ({reason}): is it running? "
            "check --server"
        ) from None
    except ValueError:
        raise RecommenderError(f"{url} did not answer JSON: is --server a recommender?") from None
