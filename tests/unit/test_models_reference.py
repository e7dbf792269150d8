"""The families' fits against plain dense reference computations (and implicit's kNN)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.sparse as sp

from recommender.models.ease import ease_weights
from recommender.models.knn import bm25_weights, cosine_neighbours
from recommender.models.neighbours import product_top_k, top_k_per_row
from recommender.models.rp3beta import rp3beta_neighbours


def random_likes(users=60, items=25, density=0.2, seed=0) -> sp.csr_matrix:
    likes = sp.random(users, items, density=density, format="csr", random_state=seed)
    likes.data[:] = 1.0
    return likes.astype(np.float32)


def assert_top_k(got: np.ndarray, dense: np.ndarray, k: int) -> None:
    """``got`` keeps, per row, entries of ``dense`` whose values are its k largest positive ones
    (which of two values equal up to rounding is kept does not matter)."""
    for row_got, row in zip(got, dense, strict=True):
        kept = np.flatnonzero(row_got)
        np.testing.assert_allclose(row_got[kept], row[kept], rtol=1e-5)
        best = np.sort(row[row > 0])[::-1][:k]
        np.testing.assert_allclose(np.sort(row_got[kept])[::-1], best, rtol=1e-5)


def test_top_k_per_row_keeps_each_rows_largest_positive_entries():
    rng = np.random.default_rng(1)
    dense = rng.integers(-3, 6, (30, 40)).astype(np.float32)  # ties and negatives
    dense[5] = 0
    sparse = np.zeros((30, 4000), np.float32)  # 1 % stored: ranked by a sort, not densely
    sparse[:, ::100] = dense
    for matrix in (dense, sparse):
        got = top_k_per_row(sp.csr_matrix(matrix), 4)
        assert_top_k(got.toarray(), matrix, 4)
        assert got.has_sorted_indices


def test_a_chunked_product_is_the_dense_product_without_its_diagonal():
    left, right = random_likes(seed=2).T.tocsr(), random_likes(seed=2)
    scale = np.linspace(0.5, 2.0, right.shape[1])
    dense = (left @ right).toarray() * scale[None, :]
    np.fill_diagonal(dense, 0)
    got = product_top_k(left, right, 5, column_scale=scale, max_entries=60)  # 2 rows a chunk
    assert_top_k(got.toarray(), dense, 5)


def implicit_similarity(model_class, likes, k, **kwargs):
    model = model_class(K=k + 1, num_threads=1, **kwargs)  # implicit counts the item itself
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(likes, show_progress=False)
    similarity = model.similarity.toarray()
    np.fill_diagonal(similarity, 0)
    return similarity


def test_cosine_neighbours_are_implicits():
    from implicit.nearest_neighbours import CosineRecommender

    likes = random_likes(seed=3)
    ours = cosine_neighbours(likes, likes.shape[1]).toarray()
    np.testing.assert_allclose(ours, implicit_similarity(CosineRecommender, likes, 25), 1e-5)


def test_bm25_weights_are_implicits():
    from implicit.nearest_neighbours import bm25_weight

    likes = random_likes(seed=4)
    ours = bm25_weights(likes, 1.2, 0.75).toarray()
    theirs = bm25_weight(likes.T, 1.2, 0.75).T.toarray()
    np.testing.assert_allclose(ours, np.maximum(theirs, 0), rtol=1e-5)


def test_ease_is_the_closed_form():
    likes = random_likes(seed=5)
    gram = (likes.T @ likes).toarray().astype(np.float64) + 7.0 * np.eye(likes.shape[1])
    inverse = np.linalg.inv(gram)
    expected = -inverse / np.diag(inverse)[None, :]
    np.fill_diagonal(expected, 0)
    np.testing.assert_allclose(ease_weights(likes, 7.0), expected, atol=2e-6)


@pytest.mark.parametrize("alpha,beta", [(1.0, 0.0), (0.7, 0.4)])
def test_rp3beta_is_the_three_step_walk(alpha, beta):
    likes = random_likes(seed=6).toarray().astype(np.float64)
    user_to_item = (likes / np.maximum(likes.sum(1, keepdims=True), 1)) ** alpha
    item_to_user = (likes.T / np.maximum(likes.T.sum(1, keepdims=True), 1)) ** alpha
    popularity = likes.sum(0)
    walk = item_to_user @ user_to_item
    walk = walk / np.where(popularity > 0, popularity, 1.0)[None, :] ** beta
    np.fill_diagonal(walk, 0)
    got = rp3beta_neighbours(sp.csr_matrix(likes), alpha=alpha, beta=beta, k=6).toarray()
    assert_top_k(got, walk, 6)
