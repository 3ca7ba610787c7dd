"""The from-scratch regression note, checked against scikit-learn itself (its check block may use numpy only,
so it states the library's numbers; this test runs the library)."""

from pathlib import Path

import numpy as np
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge

from rag.corpus import parse_note

NOTE = Path(__file__).resolve().parents[2] / "corpus" / "classical_ml" / "regression_from_scratch.md"


def _note_code() -> dict:
    """The functions the note's check block defines (the block runs, asserting as it goes)."""
    (block,) = parse_note(NOTE).check_blocks
    namespace: dict = {}
    exec(compile(block.code, str(NOTE), "exec"), namespace)
    return namespace


def test_the_notes_ridge_and_logistic_regression_match_scikit_learn():
    code = _note_code()
    rng = np.random.default_rng(1)
    X = rng.normal(size=(60, 4)) + 1.5
    y = X @ np.array([0.5, -1.0, 2.0, 0.0]) + 1.0 + 0.3 * rng.normal(size=60)
    for alpha in (0.0, 3.0):
        b, w = code["ridge_centred"](X, y, alpha)
        ref = LinearRegression().fit(X, y) if alpha == 0 else Ridge(alpha=alpha).fit(X, y)
        assert np.allclose(w, ref.coef_, atol=1e-8) and np.isclose(b, ref.intercept_, atol=1e-8)
    labels = (rng.uniform(size=60) < 1 / (1 + np.exp(-(X[:, 0] - X[:, 1])))).astype(float)
    for C in (0.1, 1.0):
        theta, _ = code["logistic_newton"](X, labels, C=C)
        ref = LogisticRegression(C=C, tol=1e-10, max_iter=10_000).fit(X, labels)
        assert np.allclose(theta[1:], ref.coef_[0], atol=1e-4) and np.isclose(theta[0], ref.intercept_[0], atol=1e-4)
