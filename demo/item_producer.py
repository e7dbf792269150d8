#!/usr/bin/env python3
"""Publish item metadata (JSON: id, title, url, ...) to the ``items`` topic.

Examples::

    python demo/item_producer.py                       # synthetic catalogue
    python demo/item_producer.py --dataset movielens   # titles with IMDb links
"""

import sys

from recommender.traffic import items_main

if __name__ == "__main__":
    sys.exit(items_main())
