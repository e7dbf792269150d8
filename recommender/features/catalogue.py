"""What the item catalogue says of a model's items, as ranking features: each item's categories
and labels (0/1 matrices over the categories and ``name=value`` pairs its items have, for the
category and label matches) and its numeric ``attributes`` (the most common names, NaN where an
item has none). The builder computes it for
the window's items from the items topic when it trains a ranker, and the snapshot carries it, so
the server computes the same features for the same model. Pure."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Final

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from ..items.records import ItemRecord, canonical
from .items import attribute_matrix, attribute_names
from .users import CategoryIndex

__all__ = ["MAX_ATTRIBUTE_FEATURES", "ItemInformation", "item_information"]

#: Attribute columns a ranker learns from at most (the most common names across the items).
MAX_ATTRIBUTE_FEATURES: Final = 32

FloatArray = npt.NDArray[np.float32]


@dataclass(frozen=True)
class ItemInformation:
    """Per item column of one model: ``categories`` (items x categories, 0/1; None: no item has
    one), ``attributes`` (items x ``attribute_names``, NaN where unknown) and ``labels`` (items x
    ``name=value`` pairs, 0/1; None: no item has one)."""

    categories: sp.csr_matrix | None
    attributes: FloatArray | None
    attribute_names: tuple[str, ...]
    labels: sp.csr_matrix | None = None

    @property
    def empty(self) -> bool:
        return self.categories is None and self.labels is None and not self.attribute_names

    @cached_property
    def category_index(self) -> CategoryIndex | None:
        """The categories as the category match reads them (made once)."""
        return None if self.categories is None else CategoryIndex(self.categories)

    @cached_property
    def label_index(self) -> CategoryIndex | None:
        """The labels as the label match reads them (made once)."""
        return None if self.labels is None else CategoryIndex(self.labels)


def item_information(
    item_ids: Sequence[str],
    record_of: Callable[[str], ItemRecord | None],
    *,
    names: Sequence[str] | None = None,
    limit: int = MAX_ATTRIBUTE_FEATURES,
) -> ItemInformation:
    """The categories and attributes of ``item_ids`` (a model's columns) as their newest records
    give them; an item without a record has neither. The attribute columns are ``names`` (a
    trained ranker's), or the ``limit`` most common names among the records."""
    records = [record_of(item) for item in item_ids]
    categories = _sets(records, lambda record: sorted(record.categories))
    labels = _sets(
        records,
        lambda record: sorted(
            f"{name}={canonical(value)}" for name, value in record.labels.items()
        ),
    )
    attributes_of = {
        item: record.attributes
        for item, record in zip(item_ids, records, strict=True)
        if record is not None and record.attributes
    }
    if names is None:
        names = attribute_names(attributes_of.values(), limit=limit)
    matrix = attribute_matrix(item_ids, attributes_of.get, names) if names else None
    return ItemInformation(categories, matrix, tuple(names), labels)


def _sets(
    records: Sequence[ItemRecord | None], members: Callable[[ItemRecord], list[str]]
) -> sp.csr_matrix | None:
    """Items x the distinct ``members`` of their records (0/1; None: no item has one). Members
    are sorted, so that the columns are the same in any run."""
    vocabulary: dict[str, int] = {}
    rows: list[int] = []
    cols: list[int] = []
    for row, record in enumerate(records):
        if record is None:
            continue
        for member in members(record):
            rows.append(row)
            cols.append(vocabulary.setdefault(member, len(vocabulary)))
    if not rows:
        return None
    return sp.csr_matrix(
        (np.ones(len(rows), np.float32), (rows, cols)), shape=(len(records), len(vocabulary))
    )
