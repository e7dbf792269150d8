#!/usr/bin/env python3
"""Model builder: python model_builder.py TOPIC RETRAIN_FREQUENCY WINDOW_LENGTH [-b] [options]."""

from recommender.cli import entry

if __name__ == "__main__":
    entry("build")
