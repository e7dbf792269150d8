#!/usr/bin/env python3
"""Publish interaction events: synthetic hidden-taste traffic, or a MovieLens/anime replay.

Examples::

    python demo/user_interactions_producer.py --rate 2000                 # synthetic, forever
    python demo/user_interactions_producer.py --dataset movielens --rate 5000
    python demo/user_interactions_producer.py --dataset anime --count 100000
"""

import sys

from recommender.traffic import interactions_main

if __name__ == "__main__":
    sys.exit(interactions_main())
