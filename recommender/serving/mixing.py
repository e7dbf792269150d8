"""The mixing stage: while an experiment runs, which model's answer a user gets.

- **ab**: the user's arm's answer alone (a stable hash of the experiment and the user);
- **interleave**: both arms' answers merged by team draft, in position order, each item
  credited to the arm that placed it, with that arm's own score (the two models' scores have
  different scales: compare them within an arm only).

Each arm's answer comes from its own pipeline: its own model, rules cache and new items.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..models.answers import Answer, ScoredItem
from ..online.experiments import ExperimentSpec, ab_arm, team_draft
from ..online.exposures import ARMS, Arm

__all__ = ["Mixed", "arms_for", "mix"]


@dataclass(frozen=True, slots=True)
class Mixed:
    """An experiment's answer: ``items`` in position order; ``credit`` the arm of each item
    (interleaving) or None; ``arm`` the arm answering (A/B) or None."""

    items: list[ScoredItem]
    source: str
    credit: list[Arm] | None = None
    arm: Arm | None = None


def arms_for(spec: ExperimentSpec, user: str) -> list[Arm]:
    """The arms whose answers the experiment needs for ``user``."""
    return [ab_arm(spec, user)] if spec.mode == "ab" else list(ARMS)


def mix(spec: ExperimentSpec, user: str, answers: dict[Arm, Answer], n: int, seed: str) -> Mixed:
    """Combine the arms' ``answers`` as ``spec`` says (``seed``: the team draft's coin)."""
    if spec.mode == "ab":
        arm = ab_arm(spec, user)
        return Mixed(answers[arm].items, answers[arm].source, arm=arm)
    first, second = answers["champion"], answers["challenger"]
    scores: dict[tuple[Arm, str], float] = {
        **{("champion", s.item): s.score for s in first.items},
        **{("challenger", s.item): s.score for s in second.items},
    }
    items, credit = team_draft(
        [s.item for s in first.items], [s.item for s in second.items], n, seed=seed
    )
    merged = [ScoredItem(i, scores[(a, i)]) for i, a in zip(items, credit, strict=True)]
    source = first.source if first.source == second.source else "mixed"
    return Mixed(merged, source, credit=list(credit))
