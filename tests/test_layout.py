"""The shape of the codebase: packages import, imports point one way, no pickle, ruff clean, short functions."""

import ast
import importlib
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MAX_FUNCTION_LINES = 60  # a function that fits on a screen (docs/ARCHITECTURE.md, "Rules")
PRODUCT = ["from_scratch", "rag", "graphrag", "finetune", "app"]
MEASUREMENT = ["reliability", "bench"]
PACKAGES = [*PRODUCT, *MEASUREMENT, "mathrag"]
# What each package may import from the project: docs/ARCHITECTURE.md, "The layers"
# (mathrag on top; bench -> reliability -> the product; app -> graphrag -> rag -> from_scratch, finetune -> rag).
ALLOWED = {
    "from_scratch": set(),
    "rag": {"from_scratch"},
    "graphrag": {"rag", "from_scratch"},
    "finetune": {"rag", "from_scratch"},
    "app": {"rag", "graphrag", "from_scratch"},
    "reliability": set(PRODUCT),
    "bench": {*PRODUCT, "reliability"},
    "mathrag": {*PRODUCT, *MEASUREMENT},
}


def test_the_architecture_page_states_these_rules():
    page = (ROOT / "docs" / "ARCHITECTURE.md").read_text(encoding="utf-8")
    for package, allowed in ALLOWED.items():
        row = next((line for line in page.splitlines() if line.startswith(f"| `{package}/` |")), None)
        assert row is not None, f"docs/ARCHITECTURE.md has no row for {package}/"
        stated = set(re.findall(r"`(\w+)`", row.rsplit("|", 2)[-2].replace("the product", " ".join(
            f"`{p}`" for p in PRODUCT)))) or set()
        assert stated == allowed, (package, stated, allowed)


def modules(package):
    return sorted((ROOT / package).rglob("*.py"))


def project_imports(path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found & set(PACKAGES)


@pytest.mark.parametrize("package", PACKAGES)
def test_package_imports_and_is_documented(package):
    mod = importlib.import_module(package)
    assert mod.__doc__ and len(mod.__doc__.strip()) > 40


@pytest.mark.parametrize("package", PACKAGES)
def test_imports_point_one_way(package):
    for path in modules(package):
        bad = project_imports(path) - ALLOWED[package] - {package}
        assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}, which {package} may not import"


@pytest.mark.parametrize("package", PACKAGES)
def test_every_module_opens_with_a_docstring(package):
    for path in modules(package):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        assert ast.get_docstring(tree), f"{path.relative_to(ROOT)} has no module docstring"


def test_ruff_is_clean():
    result = subprocess.run([sys.executable, "-m", "ruff", "check", "."], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_generated_files_are_git_ignored():
    ignored = (ROOT / ".gitignore").read_text().split()
    assert ".venv/" in ignored and ".mathrag/" in ignored


def loaded_after_import(module: str) -> set[str]:
    """The top-level modules a fresh interpreter has loaded after ``import module``."""
    code = f"import sys, {module}; print(' '.join(sorted({{m.split('.')[0] for m in sys.modules}})))"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    return set(result.stdout.split())


@pytest.mark.parametrize(("module", "never"), [
    ("rag", {"gradio", "peft", "graphrag", "faiss", "torch", "bench", "reliability", "mathrag"}),
    ("from_scratch", {"rag", "graphrag", "finetune", "app", "bench", "reliability", "mathrag"}),
    ("graphrag", {"faiss", "networkx", "gradio"}),
    ("mathrag.cli", {"torch", "faiss", "gradio", "peft", "sentence_transformers"}),  # --help stays fast
])
def test_importing_a_package_loads_only_what_it_needs(module, never):
    assert not loaded_after_import(module) & never


def test_no_product_package_imports_the_measurement():
    for package in PRODUCT:
        for path in modules(package):
            assert not project_imports(path) & {*MEASUREMENT, "mathrag"}, path.relative_to(ROOT)


@pytest.mark.parametrize("package", PACKAGES)
def test_every_function_fits_on_a_screen(package):
    long = []
    for path in modules(package):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({lines} lines)")
    assert not long, f"longer than {MAX_FUNCTION_LINES} lines: " + "; ".join(long)


def test_every_code_package_and_the_notes_ship_in_the_wheel():
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    roots = [p.parent for p in ROOT.glob("*/__init__.py") if not p.parent.name.startswith((".", "tests"))]
    found = {p.parent.relative_to(ROOT).as_posix().replace("/", ".") for r in roots for p in r.rglob("__init__.py")}
    assert found | {"mathrag_notes"} == set(config["packages"])
    assert config["package-dir"] == {"mathrag_notes": "corpus"} and config["package-data"]["mathrag_notes"] == [
        "*/*.md"]
    assert all(len(p.relative_to(ROOT / "corpus").parts) == 2 for p in (ROOT / "corpus").rglob("*.md")
               if p.name != "README.md")  # every note matches the glob the wheel takes
