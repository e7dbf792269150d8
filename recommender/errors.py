"""The one root exception of the package and its few specialisations."""

__all__ = [
    "BrokerError",
    "ConfigError",
    "LockLost",
    "RecommenderError",
    "SnapshotError",
    "TrainingAborted",
    "TrainingError",
    "one_line",
]


class RecommenderError(Exception):
    """Root of every error this package raises on purpose."""


class ConfigError(RecommenderError):
    """A setting, flag or configuration file is invalid."""


class SnapshotError(RecommenderError):
    """A snapshot is missing, partial, corrupt or inconsistent."""


class LockLost(SnapshotError):
    """This writer no longer holds (or cannot confirm it holds) a store's writer lock: it must
    not publish. ``taken`` is True when another writer holds the lock now."""

    def __init__(self, message: str, *, taken: bool) -> None:
        super().__init__(message)
        self.taken = taken


class TrainingError(RecommenderError):
    """A retrain failed or produced a model that must not be served."""


class TrainingAborted(TrainingError):
    """A retrain was stopped on purpose (shutdown)."""


class BrokerError(RecommenderError):
    """The embedded broker could not be started or stopped."""


def one_line(exc: BaseException, *, limit: int = 300) -> str:
    """An exception as one short line for a log or an operator: its type and the first line of
    its message (clients of object stores and brokers put whole request dumps in theirs)."""
    text = str(exc).strip().splitlines()
    first = text[0] if text else ""
    if len(first) > limit:
        first = first[: limit - 1] + "…"
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__
