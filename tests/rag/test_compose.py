"""Composed answers: what a question asks for, a direct first sentence, the formula, and the pinned failures."""

import pytest

from rag import answer
from rag.compose import classify
from rag.mathnorm import formula_in, pattern_found
from rag.retriever import Retriever
from rag.settings import Settings

SIGMOID_NOTE = "corpus/neural_networks/activation_functions.md"


@pytest.mark.parametrize("question, asks", [
    ("What is the Jacobian matrix?", "definition"),
    ("What is the derivative of the sigmoid function?", "formula"),
    ("Why does Adam need bias correction?", "why"),
    ("How does k-means assign points to clusters?", "how"),
    ("What is the difference between L1 and L2 regularization?", "compare"),
    ("Give an example of Bayes' theorem with numbers.", "example"),
    ("When does gradient descent fail to converge?", "failure"),
    ("The spread of my average only halved instead of dropping to a quarter. Why?", "why"),
])
def test_what_the_question_asks_for(question, asks):
    assert classify(question) == asks


@pytest.fixture(scope="module")
def retriever(tmp_path_factory, copy_notes):
    root = tmp_path_factory.mktemp("compose")
    notes = ["neural_networks/activation_functions.md", "calculus/jacobian_hessian.md", "calculus/gradient.md",
             "linear_algebra/projections_orthogonality.md", "optimization/adam.md", "linear_algebra/pca.md",
             "transformers_genai/lora.md", "information_theory/softmax_logsumexp.md"]
    return Retriever.load(Settings(home=root / "home", corpus_dir=copy_notes(root, notes)), progress=False)


def test_the_sigmoid_derivative_answer_shows_the_formula(retriever):
    reply = answer("What is the derivative of the sigmoid function?", retriever=retriever)
    assert reply.generator == "composed" and reply.asks == "formula"
    assert formula_in("\\sigma(x)(1-\\sigma(x))", reply.text)
    assert reply.citations[0].source == SIGMOID_NOTE
    assert reply.support["supported"] == reply.support["checked"] >= 1
    assert "Read next:" in reply.text.splitlines()[-1]


def test_the_jacobian_of_a_function_comes_from_that_functions_note(retriever):
    reply = answer("What is the Jacobian of the softmax function?", retriever=retriever)
    assert reply.asks == "formula"
    assert formula_in("s_i (\\delta_{ij} - s_j)", reply.text), reply.text
    assert {c.source for c in reply.citations} == {"corpus/information_theory/softmax_logsumexp.md"}


def test_the_jacobian_is_not_called_a_matrix_of_second_derivatives(retriever):
    reply = answer("What is the Jacobian matrix?", retriever=retriever)
    first = reply.text.split("\n")[0]
    assert pattern_found("re:jacobian[^.]*matrix of first( partial)? derivatives", first)
    assert not pattern_found("re:jacobian[^.]*(is|as) the matrix of second", reply.text)


def test_no_answer_opens_with_a_description_of_the_note_or_its_check(retriever):
    for question in ("What is the sigmoid?", "What is a projection?", "What does Adam do?"):
        reply = answer(question, retriever=retriever)
        assert not reply.text.startswith(("Defines", "Derives", "Explains", "The check", "This note")), reply.text
        section = reply.hits[reply.citations[0].number - 1].heading.split(" > ")[1]
        assert section not in ("Numerical check", "See also", "Pitfalls and failure modes", "Worked example")


def test_a_learners_trouble_is_answered_by_the_pitfall_that_names_it(retriever):
    reply = answer("Why do you have to centre the data before running PCA?", retriever=retriever)
    assert reply.text.startswith("- **Forgetting to centre.**"), reply.text
    assert "instead of along the spread" in reply.text
    # A question that is not about a trouble gets no pitfall, even one sharing a word with it.
    for question in ("How does LoRA reduce the number of trainable parameters?", "What is PCA?"):
        reply = answer(question, retriever=retriever)
        cited = {reply.hits[c.number - 1].heading.split(" > ")[1] for c in reply.citations}
        assert "Pitfalls and failure modes" not in cited, reply.text


def test_a_conclusion_comes_with_the_step_it_follows_from(retriever):
    reply = answer("On a contour plot of my loss, why do the downhill arrows cross the contour lines at right "
                   "angles?", retriever=retriever)
    premise, conclusion = reply.text.find("Moving along the level set"), reply.text.find("Hence $\\nabla f$")
    assert 0 <= premise < conclusion, reply.text  # never "Hence ..." alone, nor before its reason
    assert reply.support["supported"] == reply.support["checked"]


def test_a_why_question_gets_the_argument_not_the_definition(retriever):
    reply = answer("Why is softmax unchanged when the same constant is added to every logit?", retriever=retriever)
    assert reply.asks == "why"
    argument = reply.text.find("Since $e^{z_i + c} = e^c e^{z_i}$")
    definition = reply.text.find("The softmax turns a vector of logits")
    assert argument >= 0 and (definition < 0 or argument < definition), reply.text
    assert reply.support["supported"] == reply.support["checked"]


def test_a_named_but_untaught_topic_is_declined(retriever):
    reply = answer("What is a Kalman filter?", retriever=retriever)
    assert not reply.covered


def test_the_concept_a_question_names():
    from rag.compose import named_term
    from rag.corpus import load_corpus
    from rag.settings import REPO_ROOT

    notes = {n.slug: n for n in load_corpus(REPO_ROOT / "corpus")}
    act, mle = notes["activation_functions"], notes["maximum_likelihood"]
    names = [act.title, *act.aliases, *act.definitions]
    assert named_term("What is the GELU activation function?", act, names).lower() == "gelu"  # not the family
    names = [mle.title, *mle.aliases, *mle.definitions]
    assert named_term("What is maximum likelihood estimation?", mle, names).lower() != "likelihood"
    mdp = notes["mdp_bellman"]  # two concepts said: the question's subject comes first
    names = [mdp.title, *mdp.aliases, *mdp.definitions]
    question = "What does the Bellman expectation equation say, and how is it derived from the return?"
    assert named_term(question, mdp, names) == "Bellman expectation equation"
    assert named_term("What is the return, and how does the Bellman equation use it?", mdp, names) == "return"


def test_a_word_many_notes_use_does_not_move_the_answer_off_the_best_note(full_retriever):
    # "derivative" is the name of a note, but the chain-rule note answers where to evaluate the outer one.
    reply = answer("When I differentiate something like (3x^2+1)^4, do I plug x or the inside expression into the "
                   "outer function's derivative?", retriever=full_retriever)
    assert reply.citations[0].source == "corpus/calculus/chain_rule.md", reply.text
    assert "evaluated at the inner value" in reply.text.split("\n")[0]


def test_gold_statements_and_direct_openings_are_judged_as_a_reader_would():
    from rag.answering import Answer
    from rag.evaluation import Question, gold_found, opens_directly
    from rag.retriever import Hit

    q = Question("x", "What is the derivative of the sigmoid?", ["n"], [], "formula", asks="formula",
                 gold=["\\sigma(x)(1-\\sigma(x))"], must_not=["re:1\\s*\\+\\s*e\\^"])
    assert gold_found(q, "It is $\\sigma(x)\\bigl(1-\\sigma(x)\\bigr)$ [1].")
    assert not gold_found(q, "It is $\\sigma(x)(1-\\sigma(x))$, which is 1 + e^(-x) [1].")  # a confusion too
    hit = {s: Hit(text="t", source="n", heading=f"T > {s}", title="T", score=1.0, chunk_id=s)
           for s in ("Definition and derivation", "Numerical check", "Worked example")}

    def reply(text, section):
        return Answer(question=q.question, text=text, hits=[hit[section]])

    assert opens_directly(reply("The derivative is $\\sigma(1-\\sigma)$ [1].", "Definition and derivation"), "formula")
    assert not opens_directly(reply("The check compares it with finite differences [1].", "Numerical check"),
                              "formula")
    assert not opens_directly(reply("At $x=1$ it is 0.197 [1].", "Worked example"), "formula")
    assert opens_directly(reply("At $x=1$ it is 0.197 [1].", "Worked example"), "example")
    assert not opens_directly(reply("Defines the sigmoid [1].", "Definition and derivation"), "formula")


def test_an_untaught_kind_of_a_taught_thing_is_declined(full_retriever):
    # "decoding" is taught; "speculative" is mentioned once, in a pitfall, and never taught: a technique of its own.
    reply = answer("How does speculative decoding speed up inference in large language models?",
                   retriever=full_retriever)
    assert not reply.covered
    reply = answer("How does greedy decoding pick the next token?", retriever=full_retriever)
    assert reply.covered and reply.support["supported"] == reply.support["checked"] >= 1


@pytest.mark.parametrize("question, covered", [
    ("How do I compute the p-value of a Mann-Whitney U-test?", False),  # a hyphenated name no note writes
    ("How does a Kalman filter track a moving object?", False),  # mentioned in passing, never taught
    ("How does a diffusion model generate images?", True),  # taught since the generative-models notes
    ("What does the Gram-Schmidt process produce and how does it work?", True),  # the notes write Gram–Schmidt
    ("How does the Adam optimizer use its first moment?", True),
])
def test_names_of_techniques_the_notes_do_not_teach_are_declined(full_retriever, question, covered):
    reply = answer(question, retriever=full_retriever)
    assert reply.covered is covered, reply.text


def test_an_unknown_word_before_a_plain_word_is_the_learners_own(retriever):
    # "my" and "downhill" occur nowhere in this small corpus; neither names a kind of a concept it teaches.
    reply = answer("On a contour plot of my loss, why do the downhill arrows cross the contour lines?",
                   retriever=retriever)
    assert reply.covered, reply.text


def test_a_why_answer_gives_the_argument_in_the_order_of_its_steps(full_retriever):
    reply = answer("Why does the uniform distribution have the maximum entropy?", retriever=full_retriever)
    steps = [reply.text.find(s) for s in ("Jensen's inequality", "Equality in Jensen", "So the **uniform")]
    assert 0 <= steps[0] < steps[1] < steps[2], reply.text  # premise, condition for equality, conclusion
    # ... opened, as its subsection opens, by the setup the concavity step applies to
    assert reply.text.startswith("Restrict the sum to outcomes with $p_i > 0$"), reply.text
    assert reply.text.find("Restrict the sum") < reply.text.find("The logarithm is concave") < steps[0]


def test_a_why_answer_comes_from_the_notes_subsection_on_what_is_asked(full_retriever):
    # The note has "### KL is never negative" and, next to it, "### KL is not symmetric"; the first answers.
    reply = answer("Why is the KL divergence never negative?", retriever=full_retriever)
    assert "Jensen" in reply.text.split("\n\n")[0], reply.text  # the proof (Gibbs' inequality) leads
    asymmetry = reply.text.find("so KL is a divergence, not a distance")
    assert asymmetry == -1 or asymmetry > reply.text.find("This is **Gibbs' inequality**") > 0, reply.text


def test_a_sentence_that_announces_a_list_of_reasons_comes_with_the_list(full_retriever):
    reply = answer("Why do transformers need a learning-rate warm-up at the start of training?",
                   retriever=full_retriever)
    assert reply.text.startswith("Three mechanisms are commonly cited"), reply.text
    for item in ("1. **Adam's early steps", "2. **Stability needs", "3. **Post-LN transformers**"):
        assert item in reply.text, reply.text
    assert reply.support["supported"] == reply.support["checked"]


def test_a_why_answer_opens_its_subsections_argument_from_the_premise(full_retriever):
    reply = answer("Why does the gradient point in the direction of steepest ascent?", retriever=full_retriever)
    body = reply.text.split("Read next:")[0]
    assert body.startswith("The **Cauchy-Schwarz inequality** says"), body  # the premise, then its use
    assert body.find("the upper bound is reached") < body.find("direction of steepest ascent**")


def test_a_definition_leads_a_why_answer_only_when_it_gives_the_reason(full_retriever):
    reply = answer("Why does Adam need bias correction?", retriever=full_retriever)  # "... because ..."
    assert reply.text.startswith("Bias correction in Adam divides"), reply.text
    reply = answer("Why is the B matrix in LoRA initialised to zero?", retriever=full_retriever)
    assert not reply.text.startswith("LoRA fine-tunes a frozen weight matrix"), reply.text  # ", so ..." is what


def test_a_why_not_question_is_answered_by_the_pitfall_it_asks_about(full_retriever):
    reply = answer("Why does the central limit theorem not apply to averages of Cauchy random variables?",
                   retriever=full_retriever)
    assert reply.text.startswith("- **Infinite variance breaks it.**"), reply.text


def test_an_example_question_is_worked_through_to_its_result(full_retriever):
    reply = answer("Work through the chain rule for the derivative of (3x^2 + 1)^4 at x = 1.", retriever=full_retriever)
    text = reply.text.split("\n\nRead next:")[0]
    assert reply.asks == "example"
    # The part of the worked example, in the note's order: the setup, both derivatives, and the result.
    assert_in_order(text, "**Single variable.**", "g'(1) = 6", "f'(4) = 256", "1536")
    assert "two paths" not in text  # the next part of the worked example is not this question's
    assert reply.support["supported"] == reply.support["checked"]


def test_an_example_comes_from_the_note_whose_example_uses_the_questions_numbers(full_retriever):
    reply = answer("Fit a least-squares line to the points (0,1), (1,3), (2,4), (3,4). What are the intercept "
                   "and slope?", retriever=full_retriever)
    assert reply.citations[0].source == "corpus/classical_ml/linear_regression.md"
    assert pattern_found("re:\\\\hat\\{y\\} = 1\\.5 \\+ x", reply.text), reply.text
    assert "(1,2)" not in reply.text  # the least-squares note's example fits other points


def test_a_formula_answer_includes_the_definition_of_a_term_the_question_describes(full_retriever):
    reply = answer("What is the formula for a cosine learning-rate schedule with linear warm-up?",
                   retriever=full_retriever)
    assert reply.asks == "formula"
    assert pattern_found("re:Cosine decay lowers the learning rate", reply.text), reply.text
    assert pattern_found("re:Linear warm-up raises the learning rate", reply.text), reply.text


def test_the_leads_paragraph_goes_on_with_its_next_sentence(full_retriever):
    reply = answer("My embedding-based search keeps missing questions that mention exact symbols or rare names. "
                   "What can I add to the search?", retriever=full_retriever)
    assert_in_order(reply.text, "can miss exact symbols and rare names", "**BM25** scores a chunk")


def test_a_pitfall_that_describes_the_learners_symptom_answers_it(full_retriever):
    question = ("At test time my CNN gives a different prediction for the same image depending on which other "
                "images are in the batch. Why?")
    reply = answer(question, retriever=full_retriever)
    first = reply.text.split("\n\n")[0]
    # The symptom is in the pitfall's text ("predictions depend on which other examples share the batch"),
    # not in its bold head ("Forgetting evaluation mode").
    assert "**Forgetting evaluation mode**" in first and "model.eval()" in first, reply.text
    assert reply.citations[0].source == "corpus/neural_networks/batch_layer_normalization.md"


def test_a_why_answer_opens_with_its_subsections_claim(retriever):
    reply = answer("Why is the B matrix in LoRA initialised to zero?", retriever=retriever)
    # The claim first, then why training can still move.
    assert_in_order(reply.text.split("\n\nRead next:")[0],
                    "the adapted model computes exactly what the base model computes", "the gradient for $B$ is not")


def test_a_consequence_in_words_comes_after_the_formula_it_follows_from(full_retriever):
    reply = answer("How does an L2 penalty shrink the directions my data barely pins down much more than the "
                   "directions it determines well?", retriever=full_retriever)
    assert_in_order(reply.text, "**shrinkage factor** $\\sigma_j^2/(\\sigma_j^2 + \\lambda)",
                    "Well-determined directions")


def test_a_why_answer_may_be_a_bullet_that_gives_the_reason(full_retriever):
    reply = answer("I apply a rotation and then a shear to a point, and a friend does the shear first and then the "
                   "rotation. Why do we end up in different places?", retriever=full_retriever)
    assert formula_in("AB \\ne BA", reply.text.split("\n\nRead next:")[0]), reply.text


def test_an_aside_in_parentheses_never_leads(full_retriever):
    reply = answer("How can GPT-2 handle emojis or words it has never seen without ever producing an 'unknown' "
                   "token?", retriever=full_retriever)
    assert not reply.text.startswith("("), reply.text


def assert_in_order(text: str, *parts: str) -> None:
    """Every part occurs in the text, in the given order."""
    places = [text.find(p) for p in parts]
    assert -1 not in places and places == sorted(places), text


def test_a_lead_that_goes_on_from_its_paragraphs_opening_comes_after_it(full_retriever):
    # "An é is two bytes ..." illustrates the paragraph's first sentence, which is the answer itself.
    text = answer("How can GPT-2 handle emojis or words it has never seen without ever producing an 'unknown' "
                  "token?", retriever=full_retriever).text
    assert text.startswith("Every string is a sequence of bytes, and all 256 bytes are in the vocabulary")
    assert_in_order(text, "all 256 bytes are in the vocabulary", "An é is two bytes")


def test_a_title_word_that_shares_the_next_parts_head_is_named_with_it():
    # "Vector" alone would make every question about a vector a question about norms.
    from pathlib import Path

    from rag.compose import NoteBook
    from rag.corpus import parse_note

    notes = [parse_note(Path(f"corpus/{p}")) for p in ("linear_algebra/norms.md",
                                                         "neural_networks/batch_layer_normalization.md",
                                                         "transformers_genai/tokenization_bpe.md")]
    book = NoteBook.build(notes, [])
    norms, batch, bpe = (book.names(n.source) for n in notes)
    assert "Vector Norms" in norms and "Matrix Norms" in norms and "Vector" not in norms
    assert "Batch Normalization" in batch and "Batch" not in batch
    assert "Tokenization" in bpe and "Byte-Pair Encoding" in bpe
