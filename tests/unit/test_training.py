"""ALS contract on a checkerboard whose right answer is known."""

import ast
import subprocess
import sys

import numpy as np
import pytest

from recommender.errors import TrainingAborted, TrainingError
from recommender.models.als_training import AlsParams, check_factors, train_als
from recommender.window import InteractionWindow

from .helpers import append_events


def checkerboard(groups=2, users_per=20, items_per=10):
    """Users of group g touched every item of group g but one; nothing else."""
    window = InteractionWindow(100_000)
    events = []
    for g in range(groups):
        for u in range(users_per):
            for i in range(items_per):
                if i != u % items_per:  # each user misses one item of their block
                    events.append((f"g{g}u{u}", f"g{g}i{i}"))
    append_events(window, events)
    return window.matrix()


def test_als_recommends_the_missing_item_of_the_users_own_block():
    matrix = checkerboard()
    factors = train_als(
        matrix.user_items, AlsParams(factors=2, iterations=10)
    )  # one factor a block
    scores = factors.user_factors @ factors.item_factors.T
    seen = matrix.user_items.toarray() > 0
    scores[seen] = -np.inf
    best = [matrix.item_ids[c] for c in scores.argmax(axis=1)]
    for user, item in zip(matrix.user_ids, best, strict=True):
        g, u = user[1], int(user.split("u")[1])
        assert item == f"g{g}i{u % 10}"


def test_training_is_reproducible_with_a_seed():
    matrix = checkerboard()
    a = train_als(matrix.user_items, AlsParams(factors=4, iterations=3, random_seed=7))
    b = train_als(matrix.user_items, AlsParams(factors=4, iterations=3, random_seed=7))
    np.testing.assert_allclose(a.item_factors, b.item_factors, rtol=1e-4, atol=1e-5)


def test_stop_request_abandons_the_fit():
    with pytest.raises(TrainingAborted):
        train_als(checkerboard().user_items, AlsParams(iterations=50), should_stop=lambda: True)


def test_empty_window_and_non_finite_factors_are_refused():
    with pytest.raises(TrainingError):
        train_als(InteractionWindow(5).matrix().user_items, AlsParams())
    matrix = checkerboard()
    users = np.ones((len(matrix.user_ids), 4), np.float32)
    items = np.ones((len(matrix.item_ids), 4), np.float32)
    check_factors(users, items, matrix.user_items.shape)
    items[3, 1] = np.nan
    with pytest.raises(TrainingError, match="non-finite"):
        check_factors(users, items, matrix.user_items.shape)


@pytest.mark.parametrize("bad", [{"factors": 0}, {"alpha": 0}, {"regularization": float("nan")}])
def test_bad_hyper_parameters_are_refused(bad):
    with pytest.raises(ValueError):
        AlsParams(**bad)


def test_device_auto_falls_back_to_the_cpu_and_gpu_says_what_it_needs():
    from recommender.errors import ConfigError
    from recommender.models.als_training import gpu_available, resolve_device

    assert resolve_device("cpu") == "cpu"
    if gpu_available():
        assert resolve_device("auto") == resolve_device("gpu") == "gpu"
    else:
        assert resolve_device("auto") == "cpu"
        with pytest.raises(ConfigError, match="rmm"):
            resolve_device("gpu")


@pytest.mark.skipif(
    "not __import__('recommender.models.als_training').models.als_training.gpu_available()"
)
def test_gpu_training_learns_the_same_blocks_as_the_cpu():
    """Runs only where implicit can use a GPU (CUDA and rmm): not on CI."""
    matrix = checkerboard()
    params = AlsParams(factors=2, iterations=10)
    cpu = train_als(matrix.user_items, params)
    gpu = train_als(matrix.user_items, params, device="gpu")
    assert gpu.user_factors.shape == cpu.user_factors.shape
    scores = gpu.user_factors @ gpu.item_factors.T
    scores[matrix.user_items.toarray() > 0] = -np.inf
    best = [matrix.item_ids[c] for c in scores.argmax(axis=1)]
    for user, item in zip(matrix.user_ids, best, strict=True):
        assert item == f"g{user[1]}i{int(user.split('u')[1]) % 10}"


def test_blas_runs_single_threaded_after_training_starts() -> None:
    # implicit's per-user solves are many times slower under a BLAS thread pool; numpy and scipy
    # each bring their own OpenBLAS, loaded at first use, possibly after an earlier limit was set.
    script = (
        "import threadpoolctl\n"
        "from recommender.blas import limit_blas_threads\n"
        "limit_blas_threads()\n"  # nothing loaded yet: a limit set now reaches no library
        "import scipy.linalg\n"
        "from recommender.models.als_training import AlsParams, _als\n"
        "_als(AlsParams(factors=4, iterations=1))\n"
        "print([lib['num_threads'] for lib in threadpoolctl.threadpool_info()"
        " if lib['user_api'] == 'blas'])\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    threads = ast.literal_eval(done.stdout.strip().splitlines()[-1])
    assert threads and set(threads) == {1}, done.stdout
