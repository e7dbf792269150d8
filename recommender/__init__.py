"""recommender: streaming, near-real-time recommendations with sliding-window ALS."""

__all__ = ["__version__"]

__version__ = "0.1.0"
