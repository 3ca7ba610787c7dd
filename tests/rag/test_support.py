"""The answer's safety net: LaTeX normalisation, sentence-level support, and the failures it must catch."""

import pytest

from rag.corpus import load_corpus
from rag.mathnorm import formula_in, normalize_math, pattern_found
from rag.settings import REPO_ROOT
from rag.support import ConceptTable, check_sentence, concepts_from_notes, enforce, split_sentences

# A chunk as the support check sees it: its heading path, then its text.
SIGMOID = ("Activation Functions > Definition and derivation > Sigmoid derivative\n"
           "Differentiate with the chain rule:\n\n$$\n\\sigma'(x) = \\frac{e^{-x}}{(1+e^{-x})^{2}} "
           "= \\sigma(x)\\bigl(1-\\sigma(x)\\bigr).\n$$\n\nThe product $p(1-p)$ is largest at $p=\\tfrac12$, "
           "so $\\sigma'(x) \\le \\tfrac14$, with equality only at $x=0$.")


@pytest.mark.parametrize("a, b", [
    ("\\sigma(x)\\bigl(1-\\sigma(x)\\bigr)", "σ(x)(1 − σ(x))"),
    ("\\dfrac{1}{1+e^{-x}}", "1/(1+e^(-x))"),
    ("\\frac{\\mathbf{a}^\\top\\mathbf{b}}{\\mathbf{a}^\\top\\mathbf{a}}\\mathbf{a}", "(a^T b)/(a^T a) a"),
    ("\\operatorname{softmax}\\left(\\frac{QK^\\top}{\\sqrt{d_k}}\\right)V", "softmax(QK^T / sqrt(d_k)) V"),
    ("x^{2} + \\tfrac{1}{2}", "x² + 1/2"),
    ("\\lVert \\mathbf{x} \\rVert_2", "||x||_2"),
])
def test_one_formula_many_spellings(a, b):
    assert normalize_math(a) == normalize_math(b)


def test_different_formulas_stay_different():
    assert not formula_in("\\sigma(x)(1+\\sigma(x))", SIGMOID)
    assert not formula_in("1-\\tanh(x)", "1-\\tanh^{2}(x)")
    assert formula_in("\\sigma(x)(1-\\sigma(x))", SIGMOID)
    assert pattern_found("re:largest at \\$p", SIGMOID) and not pattern_found("re:smallest", SIGMOID)


def test_sentences_keep_their_display_math_and_citation():
    text = "First [1]. Second $a.b$ is\n\n$$\nx = 1.\n$$\n\nwhich is why [2]. Third [3].\n\n$$\ny$$\n\n[3]"
    assert split_sentences(text) == ["First [1].", "Second $a.b$ is\n\n$$\nx = 1.\n$$\n\nwhich is why [2].",
                                     "Third [3].\n\n$$\ny$$\n\n[3]"]


def test_an_invented_formula_is_removed_and_counted():
    answer = ("The derivative of the sigmoid is $\\sigma(x)(1-\\sigma(x))$ [1]. "
              "The derivative of the sigmoid function is $1+\\frac{1}{\\sqrt{5}}$ which is 1 + e^(-x) [1]. "
              "Its largest value is 0.25, reached at $x=0$ [1].")
    text, support = enforce(answer, [SIGMOID])
    assert "\\sqrt{5}" not in text and "1 + e^(-x)" not in text
    assert "\\sigma(x)(1-\\sigma(x))" in text
    assert (support.checked, support.supported, support.removed) == (3, 1, 2)  # 0.25 is not in the passage
    assert "formula" in support.sentences[1].reason and "0.25" in support.sentences[2].reason
    assert support.summary() == "1 of 3 sentences supported by the passages they cite; unsupported: 2 removed."


def test_verbatim_sentences_pass_and_uncited_ones_do_not():
    verbatim = "The product $p(1-p)$ is largest at $p=\\tfrac12$, so $\\sigma'(x) \\le \\tfrac14$ [1]."
    assert check_sentence(verbatim, [SIGMOID]).supported
    assert check_sentence("The product is largest at one half.", [SIGMOID]).reason == "cites no passage"
    assert check_sentence("Football players fire neurons every Tuesday [1].", [SIGMOID]).reason.startswith("words")
    assert check_sentence("It is [9].", [SIGMOID]).reason == "cites no passage"  # [9] names no passage


@pytest.fixture(scope="module")
def concepts():
    notes = load_corpus(REPO_ROOT / "corpus")
    return ConceptTable(concepts_from_notes([n for n in notes if n.slug in ("jacobian_hessian", "ridge_lasso")]))


def test_a_sentence_that_gives_one_concept_another_concepts_definition_is_unsupported(concepts):
    note = next(n for n in load_corpus(REPO_ROOT / "corpus") if n.slug == "jacobian_hessian")
    passage = note.body
    wrong = "The Jacobian Matrix is defined as the matrix of second derivatives of a scalar function [1]."
    right = "The Hessian is the matrix of second partial derivatives of a scalar function [1]."
    check = check_sentence(wrong, [passage], concepts)
    assert not check.supported and check.reason == "describes Hessian, not what it names"
    assert check_sentence(right, [passage], concepts).supported
