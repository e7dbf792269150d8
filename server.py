#!/usr/bin/env python3
"""HTTP server: python server.py --model-dir DIR --host 127.0.0.1 --port 8000."""

from recommender.cli import entry

if __name__ == "__main__":
    entry("serve")
