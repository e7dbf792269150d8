"""Measuring recommendation quality: offline protocols, prequential replay, the seed's protocol."""

from .run import EvaluateOptions, run_evaluation

__all__ = ["EvaluateOptions", "run_evaluation"]
