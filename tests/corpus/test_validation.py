"""The validator itself: each rule must catch the mistake it exists for."""

import textwrap
import warnings

import pytest

from rag.corpus import NoteError, corpus_problems, load_corpus, math_problems, parse_note, run_check, validate_note

GOOD_BODY = """
# Tiny Note

## Intuition
{prose}

## Definition and derivation
The **square** of $x$ is $x^2$, and

$$
\\frac{{d}}{{dx}} x^2 = 2x
$$

## Worked example
At $x = 3$ the slope is $6$.

## How it is used in ML
Squared errors.

## Pitfalls and failure modes
None here.

## Numerical check
Finite differences agree.

```python check
import numpy as np
h = 1e-6
assert abs(((3 + h) ** 2 - (3 - h) ** 2) / (2 * h) - {slope}) < 1e-6
```

## See also
- [Other](other.md)

## References
- Strang, G. (2016). *Introduction to Linear Algebra*. Wellesley-Cambridge Press. Derivatives of powers.
"""

FIGURE = """
```python figure
# The parabola x squared and its tangent at x = 3.
import numpy as np
import matplotlib.pyplot as plt
x = np.linspace(0, 5, 50)
fig, ax = plt.subplots(figsize=(4, 3))
ax.plot(x, x ** 2, label="$x^2$")
ax.plot(x, 9 + 6 * (x - 3), label="tangent at 3")
ax.legend()
```
"""


def write_note(folder, slug="tiny", *, title="Tiny Note", slope=6, prereqs="[]", extra_body="", front=None):
    area = folder / "calculus"
    area.mkdir(parents=True, exist_ok=True)
    (area / "other.md").write_text("---\ntitle: Other\n---\n# Other\n", encoding="utf-8")
    prose = " ".join(["word"] * 420) + "\n" + FIGURE.replace("{", "{{").replace("}", "}}")
    body = GOOD_BODY.format(prose=prose, slope=slope) + extra_body
    front = front or textwrap.dedent(f"""\
        title: {title}
        area: calculus
        tags: [demo]
        prerequisites: {prereqs}
        related_code: []
        summary: A tiny note for tests.
        definition: 'The slope of $f(x) = 2x$ is $2$.'
        """)
    path = area / f"{slug}.md"
    path.write_text(f"---\n{front}---\n{body}", encoding="utf-8")
    return path


def test_a_good_note_passes(tmp_path):
    note = parse_note(write_note(tmp_path), root=tmp_path)
    assert validate_note(note, root=tmp_path) == []
    assert run_check(note).returncode == 0


def test_a_wrong_check_fails(tmp_path):
    note = parse_note(write_note(tmp_path, slope=7), root=tmp_path)
    result = run_check(note)
    assert result.returncode != 0
    assert "AssertionError" in result.stderr


def test_bad_yaml_names_the_file(tmp_path):
    path = write_note(tmp_path, front="title: [unclosed\narea: calculus\n")
    with pytest.raises(NoteError, match=r"calculus/tiny\.md: invalid YAML in front matter"):
        parse_note(path, root=tmp_path)


def test_a_missing_title_is_read_from_the_note_and_named_by_the_rules(tmp_path):
    path = write_note(tmp_path, front="area: calculus\ntags: [x]\n")
    note = parse_note(path, root=tmp_path)  # any Markdown note is read (rag.vault) ...
    assert note.title == "Tiny Note"  # no title in the front matter: the first heading
    assert "front matter is missing 'title'" in validate_note(note, root=tmp_path)  # ... the project's rules hold


def test_a_note_without_front_matter_is_read_and_named_by_the_rules(tmp_path):
    path = tmp_path / "calculus" / "bare.md"
    path.parent.mkdir(parents=True)
    path.write_text("# Just a heading\n\nA first paragraph that says what the note is about.\n", encoding="utf-8")
    note = parse_note(path, root=tmp_path)
    assert (note.title, note.area, note.summary) == ("Just a heading", "calculus",
                                                      "A first paragraph that says what the note is about.")
    problems = validate_note(note, root=tmp_path)
    assert "front matter is missing 'summary'" in problems and "front matter is missing 'tags'" in problems


def test_load_corpus_skips_a_broken_note_and_keeps_the_rest(tmp_path):
    write_note(tmp_path)
    write_note(tmp_path, slug="broken", front="title: : :\n  - nope\n")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        notes = load_corpus(tmp_path, root=tmp_path)
    assert sorted(n.slug for n in notes) == ["other", "tiny"]
    assert any("broken.md" in str(w.message) for w in caught)


def test_rules_catch_schema_and_layout_mistakes(tmp_path):
    front = ("title: Tiny Note\narea: algebra\ntags: []\nprerequisite: [x]\nsummary: no period\n"
             "definition: 'Two sentences. Here $x$\n'\ndefinitions:\n  slope: 'The slope is $m$.'\n")
    note = parse_note(write_note(tmp_path, front=front), root=tmp_path)
    problems = "\n".join(validate_note(note, root=tmp_path))
    for expected in ["missing 'prerequisites'", "unknown key 'prerequisite'", "area 'algebra'", "'tags' is empty",
                     "'summary' must be one sentence", "'definition' must be one sentence ending with a period"]:
        assert expected in problems


def test_rules_catch_a_wrong_h1_and_a_broken_link(tmp_path):
    note = parse_note(write_note(tmp_path, title="Another Title", extra_body="\nSee [gone](missing.md).\n"),
                      root=tmp_path)
    problems = "\n".join(validate_note(note, root=tmp_path))
    assert "exactly one H1" in problems
    assert "link target 'missing.md' does not exist" in problems


def test_math_delimiters():
    assert math_problems("a $x$ and $$y$$ here\n") == []
    assert math_problems("a $x and more\n") == ["line 1: unbalanced inline '$' in this paragraph"]
    assert "'$$' is never closed" in math_problems("$$\nx = 1\n")[0]
    assert "blank line inside display math" in math_problems("$$\nx\n\ny\n$$\n")[0]
    assert "code fence inside display math" in math_problems("$$\nx\n```python\ny\n```\n$$\n")[0]
    # Dollars inside code are not math.
    assert math_problems("`$HOME` is fine\n```bash\necho $PATH\n```\n") == []


def test_prerequisite_cycles_and_dangling_names(tmp_path):
    write_note(tmp_path, slug="a", prereqs="[b]")
    write_note(tmp_path, slug="b", prereqs="[a, nowhere]")
    problems = "\n".join(corpus_problems(load_corpus(tmp_path, root=tmp_path)))
    assert "prerequisite 'nowhere' is not a note" in problems
    assert "prerequisites form a cycle" in problems


def _with_figure(tmp_path, old: str, new: str):
    path = write_note(tmp_path)
    path.write_text(path.read_text(encoding="utf-8").replace(old, new, 1), encoding="utf-8")
    return validate_note(parse_note(path, root=tmp_path), root=tmp_path)


@pytest.mark.parametrize("old, new, problem", [
    ("# The parabola x squared and its tangent at x = 3.\n", "", "'# caption' comment"),
    ("ax.legend()", "ax.legend()\nplt.savefig('x.png')", "calls savefig or show"),
    ("import numpy as np\nimport matplotlib", "import scipy\nimport numpy as np\nimport matplotlib", "imports 'scipy'"),
    ("```python figure", "```python plot", "needs at least one ```python figure block"),
    ("- Strang, G. (2016)", "Strang, G. (2016)", "'## References' lists no source"),
    ("## References\n", "", "missing section '## References'"),
])
def test_figure_blocks_and_references_follow_the_rules(tmp_path, old, new, problem):
    problems = _with_figure(tmp_path, old, new)
    assert any(problem in p for p in problems), problems


def test_a_figure_in_the_numerical_check_is_refused(tmp_path):
    path = write_note(tmp_path)
    text = path.read_text(encoding="utf-8")
    block = FIGURE.strip("\n")
    text = text.replace(block, "").replace("Finite differences agree.\n", f"Finite differences agree.\n\n{block}\n")
    path.write_text(text, encoding="utf-8")
    problems = validate_note(parse_note(path, root=tmp_path), root=tmp_path)
    assert any("sits in 'Numerical check'" in p for p in problems), problems


def test_references_do_not_count_as_prose(tmp_path):
    path = write_note(tmp_path)
    before = parse_note(path, root=tmp_path).word_count
    path.write_text(path.read_text(encoding="utf-8") + "- " + "cited " * 2000 + "\n", encoding="utf-8")
    assert parse_note(path, root=tmp_path).word_count == before


EXERCISE = '''
```python exercise
# The slope of x squared at a fresh point.
def exercise(rng):
    x = int(rng.integers(1, 9))
    return {"question": f"Slope of $x^2$ at $x = {x}$?", "answer": 2.0 * x, "tolerance": 1e-6,
            "solution": f"$2 \\\\cdot {x} = {2 * x}$."}
```
'''


@pytest.mark.parametrize("old, new, problem", [
    ("", "", None),
    ("# The slope of x squared at a fresh point.\n", "", "'# caption' comment"),
    ("def exercise(rng):", "def make(rng):", "defines no top-level 'def exercise(rng):'"),
    ("def exercise(rng):", "import scipy\ndef exercise(rng):", "imports 'scipy'"),
])
def test_exercise_blocks_follow_the_rules_and_run(tmp_path, old, new, problem):
    from rag.practice.numeric import run_exercise_block

    path = write_note(tmp_path)
    text = path.read_text(encoding="utf-8").replace("At $x = 3$ the slope is $6$.\n",
                                                    "At $x = 3$ the slope is $6$.\n" + EXERCISE.replace(old, new, 1))
    path.write_text(text, encoding="utf-8")
    note = parse_note(path, root=tmp_path)
    problems = [p for p in validate_note(note, root=tmp_path) if "exercise" in p]
    if problem is None:
        assert problems == []
        made = run_exercise_block(note, [3, 4])
        assert [m.answer for m in made] == [2.0 * int(m.question.split("= ")[1].split("$")[0]) for m in made]
    else:
        assert any(problem in p for p in problems), problems


def test_an_exercise_outside_the_worked_example_is_refused(tmp_path):
    path = write_note(tmp_path, extra_body=EXERCISE)
    problems = validate_note(parse_note(path, root=tmp_path), root=tmp_path)
    assert any("put it in 'Worked example'" in p for p in problems), problems
