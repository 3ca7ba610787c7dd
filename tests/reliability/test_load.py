"""Load on a real server: 20 gradio_client clients asking 5 questions each, all at once."""

from reliability.load_test import run_load


def test_twenty_clients_times_five_questions_all_answered_with_sources(served):
    url, _ = served
    report = run_load(url, clients=20, questions=5, generator="extractive", timeout=240)
    assert report.requests == 100, report
    assert report.errors == 0 and report.without_sources == 0, report.error_messages
    assert report.answered == 100 and 0 < report.p50_s <= report.p95_s <= report.max_s
    assert len(report.latencies_s) == 100 and max(report.latencies_s) == report.max_s


def test_the_load_plot_draws_both_distributions(tmp_path):
    from bench.reliability_suite import plot_load

    load = {"clients": 3, "questions_each": 2, "generator": "extractive", "p50_s": 0.4, "p95_s": 0.9,
            "alone_p50_s": 0.1, "latencies_s": [0.3, 0.4, 0.4, 0.5, 0.8, 0.9], "alone_latencies_s": [0.1, 0.1]}
    plot_load(load, tmp_path / "load.png")
    assert (tmp_path / "load.png").read_bytes()[:4] == b"\x89PNG"
