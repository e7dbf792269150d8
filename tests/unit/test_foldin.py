"""The fold-in's linear solve: exact where the system is definite, defined where it is not."""

import numpy as np
import pytest

from recommender.models.foldin import solve_symmetric


def test_a_definite_system_is_solved_exactly():
    rng = np.random.default_rng(0)
    y = rng.standard_normal((50, 8))
    a, b = y.T @ y + np.eye(8), rng.standard_normal(8)
    np.testing.assert_allclose(solve_symmetric(a, b), np.linalg.solve(a, b), rtol=1e-5)


def test_a_singular_system_gets_the_smallest_answer_along_what_the_user_has():
    """λ = 0 and a user whose items span one direction: singular, so a tiny ridge decides;
    the answer lies along that direction (no blow-up in the others), never a crash."""
    direction = np.ones(8) / np.sqrt(8)
    a, b = np.outer(direction, direction) * 5.0, direction * 3.0
    np.testing.assert_allclose(solve_symmetric(a, b), 0.6 * direction, rtol=1e-4)


def test_an_indefinite_system_falls_back_and_still_solves_it():
    """Dislikes with a small λ can make YᵀCY + λI indefinite: Cholesky fails, the answer stays
    the system's solution."""
    a = np.diag([4.0, -2.0, 1.0])
    b = np.array([8.0, 2.0, -1.0])
    np.testing.assert_allclose(solve_symmetric(a, b), [2.0, -1.0, -1.0], rtol=1e-5)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_input_gives_no_vector(bad):
    a = np.eye(3)
    a[0, 1] = a[1, 0] = bad
    assert solve_symmetric(a, np.ones(3)) is None
