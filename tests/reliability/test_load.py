"""Load on a real server: 20 gradio_client clients asking 5 questions each, all at once."""

from app.load_test import run_load


def test_twenty_clients_times_five_questions_all_answered_with_sources(served):
    url, _ = served
    report = run_load(url, clients=20, questions=5, generator="extractive", timeout=240)
    assert report.requests == 100, report
    assert report.errors == 0 and report.without_sources == 0, report.error_messages
    assert report.answered == 100 and 0 < report.p50_s <= report.p95_s <= report.max_s
