"""The app in a real browser: headless Chromium (Debian's package) driven by Playwright.

No browser is downloaded: Playwright launches /usr/bin/chromium. Where no
Chromium can be installed the test is skipped with the reason, except in CI
(CI=true), where it must run.
"""

import json
import os
import re
import shutil
from pathlib import Path

import pytest

from rag.mathnorm import formula_in

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]
SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "app.png"

if not Path(CHROMIUM).exists():
    if os.environ.get("CI"):
        pytest.fail(f"{CHROMIUM} is missing; `make test` installs it with apt-get", pytrace=False)
    pytest.skip(f"no browser: {CHROMIUM} is missing and could not be installed", allow_module_level=True)


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def page(browser, app_url):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    return opened(page, app_url)


def opened(page, url: str):
    """The page at ``url`` once the app has restored it (the learner box is filled in when that is done)."""
    page.goto(url, wait_until="load")
    page.wait_for_selector("#question textarea", timeout=60_000)
    page.wait_for_function("document.querySelector('#learner input').value !== ''", timeout=60_000)
    return page


def switch_learner(page, name: str) -> None:
    page.locator("#learner input").fill(name)
    page.locator("#learner input").press("Enter")
    page.get_by_text(f"Learner: {name}.").first.wait_for(timeout=30_000)  # the app says it switched


def ask(page, question: str, timeout_ms: int = 180_000):
    page.locator("#question textarea").fill(question)
    before = page.evaluate("document.body.innerText.split('Sources (').length - 1")
    page.locator("#ask").click()
    page.wait_for_function(f"document.body.innerText.split('Sources (').length - 1 > {before}", timeout=timeout_ms)


def test_question_gets_a_rendered_cited_answer(page, tmp_path):
    ask(page, "What is the derivative of the sigmoid function?")
    chat = page.locator("#chatbot")
    try:
        chat.locator(".katex").first.wait_for(timeout=15_000)  # KaTeX renders just after the message arrives
    except Exception:
        page.screenshot(path=str(Path(os.environ["MATHRAG_HOME"]) / "no-katex.png"))
        raise AssertionError(f"math was not rendered by KaTeX: {chat.inner_text()[:800]}") from None
    text = chat.inner_text()
    assert re.search(r"\[\d+\]", text), text
    # The default answer is composed from the note, checked sentence by sentence, and says so under it.
    assert "Support:" in text and "supported by the passages they cite" in text and "Read next:" in text
    assert "not supported" not in text and "instead" not in text  # no fallback notice
    # The formula itself, as KaTeX keeps its LaTeX source: sigma(1 - sigma), in the note's own variable.
    latex = " ".join(page.locator("#chatbot annotation").all_text_contents())
    assert any(formula_in(f"\\sigma({v})(1-\\sigma({v}))", latex) for v in "xz"), latex[:500]
    # The sources start collapsed; expanding lists them, and expanding one shows its note and chunk text.
    page.get_by_text("Sources (").last.click()
    listed = chat.inner_text()
    title = next(t for t in ("Activation Functions", "Logistic Regression") if t in listed)
    page.get_by_text(re.compile(r"\[\d+\] " + title)).last.click()
    path = {"Activation Functions": "neural_networks/activation_functions.md",
            "Logistic Regression": "classical_ml/logistic_regression.md"}[title]
    page.wait_for_function(f"document.body.innerText.includes('corpus/{path}')")
    shot = Path(os.environ["MATHRAG_HOME"]) / "reports" / "app.png"
    shot.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(shot))
    assert shot.stat().st_size > 10_000
    if os.environ.get("MATHRAG_UPDATE_SCREENSHOT"):
        shutil.copy(shot, SCREENSHOT)


def test_open_a_cited_note_in_the_notes_tab(page):
    page.locator("#open-note").click()
    view = page.locator("#note-view")
    view.get_by_text("Intuition").first.wait_for(timeout=30_000)
    text = view.inner_text()
    assert any(f"corpus/{path}" in text for path in ("neural_networks/activation_functions.md",
                                                       "classical_ml/logistic_regression.md"))
    assert view.locator(".katex").count() > 5
    # The note's figure, drawn by its own code, in place with its caption.
    assert "Figure:" in text and "The code that draws it" in text
    assert loaded_width(page, view.locator("img").first) > 200
    page.get_by_role("tab", name="Chat").click()


def loaded_width(page, image) -> int:
    """The picture's natural width once the browser has loaded it (0 if it could not be loaded)."""
    image.wait_for(timeout=30_000)
    handle = image.element_handle()
    page.wait_for_function("el => el.complete", arg=handle, timeout=30_000)
    return page.evaluate("el => el.naturalWidth", handle)


def test_an_answer_shows_the_figure_of_the_note_it_cites_collapsed(page):
    ask(page, "What is the singular value decomposition?")
    chat = page.locator("#chatbot")
    entry = page.get_by_text(re.compile(r"Figure: The unit circle")).last
    entry.wait_for(timeout=30_000)
    assert chat.locator("img").count() == 0 or not chat.locator("img").last.is_visible()  # collapsed at first
    entry.click()
    assert loaded_width(page, chat.locator("img").last) > 200


def settled_messages(page, tries: int = 30) -> int:
    """The number of chat messages once it stops changing (an earlier answer may still be rendering)."""
    count = -1
    for _ in range(tries):
        now = page.locator("#chatbot .message").count()
        if now == count:
            return now
        count = now
        page.wait_for_timeout(1_000)
    raise AssertionError(f"the chat kept changing: {count} messages")


def test_an_empty_question_sends_nothing(page):
    messages = settled_messages(page)
    page.locator("#question textarea").fill("   ")
    page.locator("#ask").click()
    page.get_by_text("Type a question first.").wait_for(timeout=10_000)
    assert page.locator("#chatbot .message").count() == messages


def test_html_in_a_question_is_shown_not_run(page):
    ask(page, "<img src=x onerror=\"window.pwned=1\"><b>What</b> is the derivative of tanh?")
    assert page.evaluate("window.pwned") is None
    assert "<b>What</b>" in page.locator("#chatbot").inner_text()


def test_inside_the_model_tab_draws_the_attention_of_the_last_question(page):
    """The attention tab takes the last question, draws a layer's heads, and says clearly when a text is too long."""
    page.get_by_role("tab", name="Inside the model").click()
    text = page.locator("#attention-text textarea")
    assert "What</b> is the derivative of tanh?" in text.input_value()  # the question asked just before
    text.fill("The derivative of tanh is one minus tanh squared.")
    page.locator("#show-attention").click()
    page.locator("#attention-image img").wait_for(timeout=120_000)
    page.get_by_text("All 9 heads of layer 0").wait_for(timeout=10_000)
    size = page.evaluate("(() => { const i = document.querySelector('#attention-image img');"
                         " return [i.naturalWidth, i.naturalHeight]; })()")
    assert min(size) > 300, f"the heatmap is {size} pixels"
    text.fill("word " * 200)
    page.locator("#show-attention").click()
    page.get_by_text("a heatmap shows at most 96").wait_for(timeout=30_000)
    assert page.get_by_text("All 9 heads of layer 0").count() == 1  # the last picture and caption are kept
    page.get_by_role("tab", name="Chat").click()


def test_knowledge_graph_tab_draws_the_graph_behind_the_last_answer_and_finds_paths(page):
    """After an answer, the graph tab shows the concepts behind it; the path finder lists prerequisites in order."""
    page.get_by_role("tab", name="Knowledge graph").click()
    page.locator("#graph-plot .js-plotly-plot").wait_for(timeout=60_000)
    legend = page.locator("#graph-legend").inner_text()
    assert "Activation Functions" in legend  # the note the tanh answers came from
    labels = page.locator("#graph-plot .scatterlayer text").all_text_contents()  # SVG: text_content, not inner_text
    assert "Activation Functions" in labels, labels
    assert "prerequisite of" in page.locator("#graph-plot .legend").text_content()
    box = page.locator("#graph-plot .scatterlayer path.point").first.bounding_box()  # plotly's drag layer is on top:
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)  # move the mouse, as a person does
    page.locator("#graph-plot .hoverlayer .hovertext").wait_for(timeout=10_000)
    hover = page.locator("#graph-plot .hoverlayer .hovertext").text_content()
    assert ("note ·" in hover or "term ·" in hover) and len(hover) > 60, hover
    page.locator("#path-concept textarea").fill("LoRA")
    page.locator("#find-path").click()
    page.get_by_text("Learning path to LoRA").wait_for(timeout=30_000)
    text = page.locator("#path-view").inner_text()
    assert text.index("Singular Value Decomposition") < text.index("corpus/transformers_genai/lora.md")
    page.locator("#path-concept textarea").fill("attenshun")
    page.locator("#find-path").click()
    page.get_by_text("closest: Scaled Dot-Product Attention").wait_for(timeout=30_000)
    page.get_by_role("tab", name="Chat").click()


def test_practice_tab_grades_a_right_a_wrong_and_an_unreadable_answer(page):
    """Three answers in the Practice tab: the right term, a formula that cannot be read, a wrong formula."""
    from rag.practice.exercises import build_exercises

    book = build_exercises()
    page.get_by_role("tab", name="Practice").click()
    switch_learner(page, "browser test")
    page.locator("#practice-note input").fill("Activation Functions")
    page.keyboard.press("ArrowDown")
    page.keyboard.press("Enter")
    page.locator("#practice-start").click()
    prompt = page.locator("#practice-prompt")
    page.wait_for_function("document.querySelector('#practice-prompt').innerText.includes(':cloze:')", timeout=60_000)
    cloze = re.search(r"activation_functions:cloze:\w+", prompt.inner_text()).group(0)

    def check(answer: str, says: str) -> str:
        page.locator("#practice-answer textarea").fill(answer)
        page.locator("#practice-check").click()
        page.wait_for_function(f"document.querySelector('#practice-verdict').innerText.includes({says!r})",
                               timeout=60_000)
        return page.locator("#practice-verdict").inner_text()

    right = check(book.exercises[cloze].answer, "Right")
    assert "graded by cloze" in right and "Solution." in right and "activation_functions.md" in right
    page.locator("#practice-next").click()
    page.wait_for_function("document.querySelector('#practice-prompt').innerText.includes(':formula:')",
                           timeout=60_000)
    page.locator("#practice-prompt .katex").first.wait_for(timeout=15_000)  # the question's math is rendered
    unread = check(r"\frac{1}{", "Not graded")
    assert "never closed" in unread and "Solution" not in unread
    wrong = check("x + 1", "Not right")
    page.locator("#practice-preview .katex").first.wait_for(timeout=15_000)  # the answer renders as typed
    assert "numeric spot-check" in wrong and "Solution." in wrong
    page.wait_for_function("document.querySelector('#practice-study').innerText.includes('Study next')",
                           timeout=60_000)
    page.get_by_role("tab", name="Chat").click()


def chat_text(page) -> str:
    return page.locator("#chatbot").inner_text()


def test_a_conversation_is_kept_across_a_reload_and_a_restart_exported_and_copied(browser, engine, free_port,
                                                                                    tmp_path):
    """Two questions, then a reload, then a restart of the server on the same address: the conversation is there
    each time (the browser remembers which one was open, the store keeps it). It exports as Markdown and JSON,
    the copy button puts the last answer with its sources on the clipboard, and New chat / Delete do what they say."""
    from app.server import launch

    port = free_port()
    demo, url = launch(engine, port=port, block=False)
    context = browser.new_context(viewport={"width": 1280, "height": 900},
                                  permissions=["clipboard-read", "clipboard-write"])
    page = context.new_page()
    try:
        opened(page, url)
        switch_learner(page, "keeper")
        ask(page, "What is the derivative of tanh?")
        ask(page, "What is the sigmoid function?")
        before = chat_text(page)
        assert "tanh" in before and "sigmoid" in before.lower()
        page.wait_for_function("document.querySelector('#past-conversations input').value.includes('tanh')",
                               timeout=30_000)

        page.locator("#copy-answer").click()
        copied = page.evaluate("navigator.clipboard.readText()")
        assert "Sources:" in copied and "corpus/neural_networks/activation_functions.md" in copied
        with page.expect_download() as got:
            page.locator("#export-markdown").click()
        markdown = Path(got.value.path()).read_text()
        assert markdown.startswith("# What is the derivative of tanh?")
        assert "## 2. What is the sigmoid function?" in markdown
        assert markdown.count("Sources:") == 2 and "*Support:" in markdown
        with page.expect_download() as got:
            page.locator("#export-json").click()
        data = json.loads(Path(got.value.path()).read_text())
        assert data["learner"] == "keeper" and len(data["turns"]) == 2 and data["turns"][1]["citations"]

        opened(page, url)  # a reload: the same conversation, for the same learner
        assert "sigmoid function?" in chat_text(page) and page.locator("#learner input").input_value() == "keeper"

        demo.close()  # a restart: a new server on the same address, the browser still open
        demo, _ = launch(engine, port=port, block=False)
        opened(page, url)
        assert "sigmoid function?" in chat_text(page) and "derivative of tanh" in chat_text(page)

        page.locator("#new-conversation").click()  # a new chat: empty, and the old one still listed
        page.wait_for_function("!document.querySelector('#chatbot').innerText.includes('tanh')", timeout=30_000)
        page.locator("#past-conversations input").click()
        page.get_by_role("option", name=re.compile("derivative of tanh")).click()
        page.wait_for_function("document.querySelector('#chatbot').innerText.includes('sigmoid function?')",
                               timeout=30_000)
        page.locator("#delete-conversation").click()
        page.wait_for_function("!document.querySelector('#chatbot').innerText.includes('tanh')", timeout=30_000)
        from app.conversations import ConversationStore

        assert ConversationStore.open(engine.settings).conversations("keeper") == []
    finally:
        context.close()
        demo.close()
