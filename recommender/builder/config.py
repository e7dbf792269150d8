"""The builder's settings and its counters."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from ..errors import ConfigError
from ..events import DEFAULT_MAX_ID_BYTES
from ..models import FAMILIES, Setting, make_family
from ..models.als_training import AlsParams
from ..ranker.window_fit import RankerMode
from ..ratings import RatingScale
from ..store import SnapshotStore

__all__ = ["BuilderConfig", "BuilderStats"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True, slots=True)
class BuilderConfig:
    """Everything the builder needs besides the Kafka connection."""

    topic: str
    retrain_every: int
    window_events: int
    store: SnapshotStore
    window_seconds: float | None = None
    #: Event weights decay by half every this many seconds of event time (None: no decay).
    half_life_seconds: float | None = None
    #: Weight fields are ratings on this scale (None: weights as given; negative = dislike).
    ratings: RatingScale | None = None
    retrain_interval: float | None = None
    from_beginning: bool = False
    #: Publish models before the backlog seen at start is read (marked partial; default: wait).
    partial_models: bool = False
    keep: int = 3
    #: The store's writer lock may be taken over once not refreshed for this many seconds.
    lock_ttl: float = 60.0
    params: AlsParams = field(default_factory=AlsParams)
    #: The model family: ``auto`` (start with ALS; self-tuning may choose another family on
    #: evidence) or one family's name, pinned.
    model: str = "auto"
    #: Peak bytes a fit may take: self-tuning leaves out a family whose fit would need more.
    model_memory: int = 8 << 30
    #: The servers' exposures topic: the builder's monitor joins it with the interactions and
    #: publishes live quality (None: no monitor).
    exposures_topic: str | None = "recommendations"
    #: Interactions are attributed to exposures at most this many seconds old.
    attribution_window: float = 1800.0
    #: Where experiments are started and stopped (the monitor follows it too).
    experiments_topic: str | None = "experiments"
    #: Where retrains fit ALS (resolved: see training.resolve_device); tuning stays on one core.
    device: Literal["cpu", "gpu"] = "cpu"
    dead_letter_topic: str | None = None
    #: Dead letters larger than this are copied truncated to it (a producer refuses bigger ones).
    dead_letter_max_bytes: int = 64 * 1024
    max_id_bytes: int = DEFAULT_MAX_ID_BYTES
    batch_size: int = 10_000
    poll_timeout: float = 0.2
    #: Hyper-parameters given explicitly (--factors ...): tuning leaves these alone.
    pinned: frozenset[str] = frozenset()
    #: Other families' settings given explicitly (--model-setting ease_lambda=200): used
    #: whenever that family is, never tuned.
    family_settings: Mapping[str, Any] = field(default_factory=dict)
    #: Self-tuning: on by default; seconds of search per session; re-tune after this many
    #: publications or seconds, whichever comes first.
    tune: bool = True
    tune_budget: float = 90.0
    retune_every: int = 50
    retune_interval: float = 3600.0
    #: The learned ranking stage (see recommender.ranker.window_fit), trained at most every
    #: ``ranker_interval`` seconds.
    ranker: RankerMode = "auto"
    ranker_interval: float = 600.0
    #: The item catalogue's topic: its categories and attributes are the ranker's item features
    #: (None: the ranker learns from the window alone).
    items_topic: str | None = None
    #: Quality gate: refuse a model whose quality on events the serving model has not seen is
    #: significantly lower, by more than this fraction (None: no gate).
    max_quality_drop: float | None = 0.2
    gate_holdout: float = 0.1
    gate_min_events: int = 200
    gate_min_users: int = 50
    gate_max_events: int = 5000
    #: After a refusal, retry this many seconds later even with no new events (None: the
    #: --retrain-interval, else 60 s).
    gate_retry: float | None = None
    #: A serving model older than this is replaced even if the gate refuses (None: never).
    max_model_age: float | None = 6 * 3600.0

    def __post_init__(self) -> None:
        if self.window_events < 1:
            raise ConfigError("WINDOW_LENGTH must be at least 1")
        if self.retrain_every < 0:
            raise ConfigError("RETRAIN_FREQUENCY must be >= 0")
        if self.retrain_every == 0 and not self.retrain_interval:
            raise ConfigError("RETRAIN_FREQUENCY 0 needs --retrain-interval, or nothing retrains")
        if self.retrain_interval is not None and self.retrain_interval <= 0:
            raise ConfigError("--retrain-interval must be positive")
        if self.window_seconds is not None and self.window_seconds <= 0:
            raise ConfigError("--window-seconds must be positive")
        if self.half_life_seconds is not None and not self.half_life_seconds > 0:
            raise ConfigError("--half-life must be positive")
        if self.keep < 1:
            raise ConfigError("--keep must be at least 1")
        if not 1 <= self.lock_ttl <= 3600:
            raise ConfigError("--lock-ttl must be from 1 to 3600 seconds")
        if self.max_quality_drop is not None and not 0 <= self.max_quality_drop < 1:
            raise ConfigError("--max-quality-drop must be from 0 to below 1 (or off)")
        if not 0 < self.gate_holdout < 0.5:
            raise ConfigError("--gate-holdout must be a fraction between 0 and 0.5")
        if self.tune_budget <= 0 or self.retune_every < 1 or self.retune_interval <= 0:
            raise ConfigError(
                "--tune-budget, --retune-every and --retune-interval must be positive"
            )
        if self.ranker_interval <= 0:
            raise ConfigError("--ranker-interval must be positive")
        if self.max_model_age is not None and self.max_model_age <= 0:
            raise ConfigError("--max-model-age must be positive (or off)")
        if not 1 <= self.attribution_window <= 7 * 86400:
            raise ConfigError("--attribution-window must be from 1 s to 7 days")
        if self.model != "auto" and self.model not in FAMILIES:
            raise ConfigError(
                f"--model {self.model!r}: choose auto or one of {', '.join(sorted(FAMILIES))}"
            )
        for family, given in settings_by_family(self.family_settings).items():
            if self.model not in ("auto", family):
                raise ConfigError(f"--model-setting {', '.join(given)}: --model is {self.model}")
            trainer = make_family(family)
            try:
                trainer.validate({**trainer.defaults(), **given})
            except ValueError as exc:
                raise ConfigError(f"--model-setting: {exc}") from None

    @property
    def retry_seconds(self) -> float:
        return self.gate_retry or self.retrain_interval or 60.0

    @property
    def families(self) -> tuple[str, ...]:
        """The families this builder may serve (self-tuning searches among them). ALS flags
        given explicitly (``--factors 64``) keep ALS: a pinned setting never silently stops
        applying because another family won."""
        if self.model != "auto":
            return (self.model,)
        return ("als",) if self.pinned else tuple(FAMILIES)

    @property
    def pinned_family_settings(self) -> dict[str, Any]:
        """The operator's ``--model-setting`` values, plus, with ``--half-life`` on plain
        events (no ``--ratings``), ``<family>_binary`` false for the families that have it:
        their weights are then the decayed likes, so decay counts for them as it does for ALS
        (likes as 1 would ignore it). Never searched."""
        found: dict[str, Any] = {}
        if self.half_life_seconds is not None and self.ratings is None:
            for family in self.families:
                name = f"{family}_binary"
                if name in make_family(family).defaults():
                    found[name] = False
        return {**found, **self.family_settings}

    def initial_setting(self) -> Setting:
        """What the first retrain uses: the pinned family (or ALS) with its defaults, the
        pinned ALS flags applied."""
        family = "als" if self.model == "auto" else self.model
        setting = self.setting_for(family, {})
        assert setting is not None
        return setting

    def affordable(self, setting: Setting, shape: tuple[int, int], nnz: int) -> Setting:
        """``setting``, or ALS's defaults when its family would take more than
        ``model_memory`` on a window of this shape (a catalogue grown past what EASE can hold,
        say); logged. A pinned family is kept, with a warning."""
        cost = make_family(setting.family).cost(shape[0], shape[1], nnz, setting.params)
        if cost.bytes <= self.model_memory or setting.family == "als":
            return setting
        fallback = self.setting_for("als", {})
        log.warning(
            "%s would take about %.1f GiB on %d items, over --model-memory %.1f GiB%s",
            setting.family,
            cost.bytes / 2**30,
            shape[1],
            self.model_memory / 2**30,
            ": this retrain uses ALS's defaults instead" if fallback else " (pinned: trying)",
        )
        return fallback or setting

    def setting_for(self, family: str, params: Mapping[str, Any]) -> Setting | None:
        """``params`` for ``family`` completed with its defaults, the pinned ALS flags applied;
        None if this builder may not serve that family. Raises ValueError for bad params."""
        if family not in self.families:
            return None
        trainer = make_family(family)
        values = {**trainer.defaults(), **params}
        values.update(settings_by_family(self.pinned_family_settings).get(family, {}))
        if family == "als":
            values.update({name: getattr(self.params, name) for name in self.pinned})
            values["random_seed"] = self.params.random_seed
        return Setting(family, trainer.validate(values))


def settings_by_family(settings: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """``--model-setting`` values grouped by the family their name starts with
    (``ease_lambda``: EASE). Raises ConfigError for a name no family has."""
    found: dict[str, dict[str, Any]] = {}
    for name, value in settings.items():
        family = name.split("_", 1)[0]
        if family == "als" or family not in FAMILIES or "_" not in name:
            known = ", ".join(sorted(f for f in FAMILIES if f != "als"))
            raise ConfigError(
                f"--model-setting {name}: names start with a family ({known}) and an "
                "underscore, e.g. ease_lambda=200 (ALS has --factors ...)"
            )
        found.setdefault(family, {})[name] = value
    return found


@dataclass(slots=True)
class BuilderStats:
    """Counters since this process started (written into every manifest)."""

    consumed: int = 0
    accepted: int = 0
    replayed: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    retrains_started: int = 0
    retrains_published: int = 0
    retrains_failed: int = 0
    #: Of the failed retrains, those whose snapshot could not be written to the store.
    publication_failures: int = 0
    quality_rejections: int = 0
    forced_publications: int = 0
    gate_abstentions: int = 0
    consumer_errors: int = 0
    dead_letters: int = 0
    dead_letters_truncated: int = 0
    dead_letter_failures: int = 0
    log_resets: int = 0
    lost_window_events: int = 0
    quarantined_snapshots: int = 0
    rankers_trained: int = 0
    ranker_failures: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "rejected": dict(self.rejected)}
