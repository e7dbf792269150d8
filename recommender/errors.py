"""The one root exception of the package and its few specialisations."""

__all__ = [
    "BrokerError",
    "ConfigError",
    "RecommenderError",
    "SnapshotError",
    "TrainingAborted",
    "TrainingError",
]


class RecommenderError(Exception):
    """Root of every error this package raises on purpose."""


class ConfigError(RecommenderError):
    """A setting, flag or configuration file is invalid."""


class SnapshotError(RecommenderError):
    """A snapshot is missing, partial, corrupt or inconsistent."""


class TrainingError(RecommenderError):
    """A retrain failed or produced a model that must not be served."""


class TrainingAborted(TrainingError):
    """A retrain was stopped on purpose (shutdown)."""


class BrokerError(RecommenderError):
    """The embedded broker could not be started or stopped."""
