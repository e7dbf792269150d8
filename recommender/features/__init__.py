"""Features of items, users and candidates for the ranking stage, computed the same way by the
builder (training, from the window) and the server (answering, from the snapshot and fresh
events). Pure: numpy only, no Kafka, no aiohttp.
"""

from .catalogue import ItemInformation, item_information
from .items import ITEM_FEATURES, ItemStats, attribute_matrix, attribute_names, item_stats
from .schema import FeatureSchema
from .users import USER_FEATURES, CategoryIndex, UserStats, category_match, user_stats

__all__ = [
    "ITEM_FEATURES",
    "USER_FEATURES",
    "CategoryIndex",
    "FeatureSchema",
    "ItemInformation",
    "ItemStats",
    "UserStats",
    "attribute_matrix",
    "attribute_names",
    "category_match",
    "item_information",
    "item_stats",
    "user_stats",
]
