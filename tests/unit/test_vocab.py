"""Vocabulary invariants (hypothesis)."""

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from recommender.vocab import Vocabulary

keys = st.lists(st.text(min_size=1, max_size=5), max_size=40)


@given(keys, keys)
def test_rows_are_dense_stable_and_invertible(first, second):
    vocab = Vocabulary()
    rows1 = vocab.add(first)
    rows2 = vocab.add(second)
    assert len(vocab) == len(set(first) | set(second))
    assert sorted(set(rows1.tolist()) | set(rows2.tolist())) == list(range(len(vocab)))
    for key, row in zip(first + second, [*rows1.tolist(), *rows2.tolist()], strict=True):
        assert vocab.id_of(row) == key and vocab.row(key) == row


@given(keys, st.data())
def test_compaction_keeps_the_kept_ids_and_renumbers_densely(ids, data):
    vocab = Vocabulary(ids)
    keep = np.array(
        data.draw(st.lists(st.booleans(), min_size=len(vocab), max_size=len(vocab))), dtype=bool
    )
    before = list(vocab.ids)
    remap = vocab.compact(keep)
    assert list(vocab.ids) == [k for k, flag in zip(before, keep, strict=True) if flag]
    for old, new in enumerate(remap.tolist()):
        if keep[old]:
            assert vocab.id_of(new) == before[old]
        else:
            assert new == -1 and before[old] not in vocab
