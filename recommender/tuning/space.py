"""What self-tuning searches: the families and their conditional settings spaces."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from ..models import Setting, make_family

__all__ = ["TUNABLE", "SearchSpace"]

#: ALS's settings that the operator may pin (``--factors`` ...).
TUNABLE: Final = ("factors", "regularization", "alpha", "iterations")


@dataclass(frozen=True, slots=True)
class SearchSpace:
    """What is searched: the families (``auto``: all; else one), and the pinned settings.

    Each family's ranges are its own (``suggest``); ``pinned`` values (ALS's flags by their
    names, other families' settings by theirs: ``ease_lambda``) are never changed.
    """

    families: tuple[str, ...] = ("als",)
    pinned: Mapping[str, float | int] = field(default_factory=dict)
    #: Peak bytes a trial's fit may take; a family over it on this window is left out.
    max_bytes: int = 8 << 30
    #: Seconds one trial's fit may be expected to take (None: a third of the session's budget).
    max_seconds: float | None = None

    def suggest(self, trial: Any) -> Setting:
        family = (
            trial.suggest_categorical("family", list(self.families))
            if len(self.families) > 1
            else self.families[0]
        )
        trainer = make_family(family)
        if family == "als":
            values = self._als(trial)
        else:  # an operator's --model-setting is never searched
            pinned = {k: v for k, v in self.pinned.items() if k.startswith(f"{family}_")}
            values = {**trainer.suggest(_Pinned(trial, pinned)), **pinned}
        return Setting(family, trainer.validate({**trainer.defaults(), **values}))

    def _als(self, trial: Any) -> dict[str, Any]:
        values = {
            name: value
            for name, value in make_family("als").suggest(_Pinned(trial, self.pinned)).items()
        }
        values.update(self.pinned)
        return values

    def trial_values(self, setting: Setting) -> dict[str, Any]:
        """``setting`` as optuna trial values (for warm starts), inside the ranges."""
        values: dict[str, Any] = {}
        if len(self.families) > 1:
            if setting.family not in self.families:
                return {}
            values["family"] = setting.family
        elif setting.family != self.families[0]:
            return {}
        for name, value in setting.params.items():
            if setting.family != "als":
                if name not in self.pinned:  # other families' settings are named as optuna's
                    values[name] = value
            elif name not in self.pinned and name in TUNABLE:
                values[f"als_{name}"] = value
        return values


class _Pinned:
    """A trial that answers pinned names with their pinned values (nothing is suggested); ALS's
    optuna names are ``als_<flag>``, the others' their settings' names."""

    def __init__(self, trial: Any, pinned: Mapping[str, Any]) -> None:
        self.trial, self.pinned = trial, pinned

    def _value(self, name: str) -> Any:
        return self.pinned.get(name.removeprefix("als_"))

    def suggest_int(self, name: str, *args: Any, **kwargs: Any) -> int:
        value = self._value(name)
        return int(value) if value is not None else self.trial.suggest_int(name, *args, **kwargs)

    def suggest_float(self, name: str, *args: Any, **kwargs: Any) -> float:
        value = self._value(name)
        if value is not None:
            return float(value)
        return float(self.trial.suggest_float(name, *args, **kwargs))

    def suggest_categorical(self, name: str, choices: Any, *args: Any, **kwargs: Any) -> Any:
        value = self._value(name)
        return value if value is not None else self.trial.suggest_categorical(name, choices)
