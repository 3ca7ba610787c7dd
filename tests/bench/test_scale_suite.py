"""The vector-scale suite on a small synthetic set: exact is the reference, approximate indexes trade recall."""

import numpy as np

from bench.scale_suite import D, _ratios, markdown, measure_size, plot_tradeoff, synthetic


def test_synthetic_vectors_are_seeded_normalized_and_clustered():
    a, b = synthetic(2000, seed=1, clusters=20), synthetic(2000, seed=1, clusters=20)
    assert a.shape == (2000, D) and a.dtype == np.float32 and np.array_equal(a, b)
    assert np.allclose(np.linalg.norm(a, axis=1), 1, atol=1e-5)
    cos = a[:200] @ a[:200].T
    assert np.quantile(cos, 0.99) > 0.3 > np.median(cos)  # close within a cluster, near 0 across


def test_every_kind_is_measured_against_exact_search(tmp_path):
    result = measure_size(6000, 60, kinds=("flat", "ivf", "ivf-pq"))
    kinds = result["kinds"]
    assert kinds["flat"]["best"]["recall@10"] == 1.0 and kinds["flat"]["best"]["speedup_vs_exact"] == 1.0
    ivf = kinds["ivf"]["settings"]
    assert [s["setting"] for s in ivf][:3] == ["nprobe=1", "nprobe=2", "nprobe=4"]
    assert ivf[-1]["recall@10"] >= ivf[0]["recall@10"] and ivf[-1]["recall@10"] > 0.9  # more lists: more recall
    assert kinds["ivf-pq"]["memory_mb"] < kinds["ivf"]["memory_mb"] / 5  # the point of product quantization
    best = kinds["ivf"]["best"]
    assert best["meets_recall"] == (best["recall@10"] >= 0.95)
    lines = markdown({"sizes": [result], "headline": {"n": 6000, "kind": "ivf", "setting": best["setting"],
                                                       "recall@10": best["recall@10"], "speedup_vs_exact": 1.0,
                                                       "meets_target": False}})
    assert any(line.startswith("| 6,000 | ivf |") for line in lines) and "misses the target" in "\n".join(lines)
    bars = _ratios({"sizes": [result]})
    assert [b.label.split()[0] for b in bars] == [k for k in ("ivf", "ivf-pq") if kinds[k]["best"]["meets_recall"]]
    assert bars[0].value == best["speedup_vs_exact"] and bars[0].target is None  # the target is at 1M
    plot_tradeoff([result], tmp_path / "scale.png")
    assert (tmp_path / "scale.png").read_bytes()[:4] == b"\x89PNG"
