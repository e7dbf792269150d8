"""The model builder: Kafka -> window -> ALS -> snapshots (see :class:`ModelBuilder`)."""

from .config import BuilderConfig, BuilderStats
from .core import ModelBuilder

__all__ = ["BuilderConfig", "BuilderStats", "ModelBuilder"]
