"""Keep the corpus honest: every note parses, follows the rules, and its check passes."""

import pytest

from rag.corpus import corpus_problems, load_corpus, note_paths, parse_note, run_check, validate_note

PATHS = note_paths()
IDS = [p.stem for p in PATHS]

# Every topic the foundation issue asks for, by the slug of the note that covers it.
REQUIRED = {
    "linear_algebra": [
        "vectors_dot_product", "projections_orthogonality", "matrices_linear_maps", "rank_independence_inverse",
        "least_squares_normal_equations", "eigenvalues_eigenvectors", "svd", "pca", "norms",
        "positive_definite_matrices",
    ],
    "calculus": ["derivatives_partial_derivatives", "gradient", "chain_rule", "jacobian_hessian", "taylor_expansion",
                 "convexity"],
    "probability_statistics": [
        "random_variables_distributions", "expectation_variance", "bayes_theorem", "naive_bayes",
        "maximum_likelihood", "map_estimation", "central_limit_theorem", "bias_variance_tradeoff",
    ],
    "optimization": ["gradient_descent", "learning_rate_convergence", "momentum", "adam", "learning_rate_schedules",
                     "lagrange_multipliers"],
    "information_theory": ["entropy", "cross_entropy_kl", "softmax_logsumexp", "mutual_information"],
    "classical_ml": [
        "linear_regression", "logistic_regression", "k_nearest_neighbours", "decision_trees", "random_forests",
        "support_vector_machines", "k_means", "ridge_lasso", "evaluation_metrics",
    ],
    "neural_networks": ["perceptron", "multilayer_perceptron", "activation_functions", "backpropagation",
                        "weight_initialization", "dropout", "batch_layer_normalization"],
    "transformers_genai": [
        "tokenization_bpe", "embeddings", "scaled_dot_product_attention", "multi_head_attention",
        "positional_encodings", "gpt_architecture", "sampling", "lora", "retrieval_augmented_generation",
        "graph_rag",
    ],
}


def test_corpus_size():
    assert len(PATHS) >= 55, f"the corpus has {len(PATHS)} notes; at least 55 are required"


@pytest.mark.parametrize("area,slug", [(a, s) for a, slugs in REQUIRED.items() for s in slugs])
def test_required_topic_has_a_note(area, slug):
    assert any(p.parent.name == area and p.stem == slug for p in PATHS), f"no note corpus/{area}/{slug}.md"


@pytest.mark.parametrize("path", PATHS, ids=IDS)
def test_note_follows_the_rules(path):
    note = parse_note(path)
    problems = validate_note(note)
    assert not problems, f"{note.source}:\n  " + "\n  ".join(problems)


@pytest.mark.parametrize("path", PATHS, ids=IDS)
def test_note_check_passes(path):
    note = parse_note(path)
    assert len(note.check_blocks) == 1
    result = run_check(note)
    assert result.returncode == 0, f"{note.source}: check failed\n{result.stdout}\n{result.stderr}"


def test_prerequisites_resolve_and_are_acyclic():
    notes = load_corpus()
    assert len(notes) == len(PATHS), "some notes could not be parsed"
    assert corpus_problems(notes) == []
