"""The documentation tells the truth: every ```python block of README.md and docs/*.md runs as written,
the README's statement of the default model's settings is the shipped grace_encoder.json, docs/python.md
lists every EncoderConfig field, docs/results.md is what benchmarks/out/ holds, and every link resolves.

The blocks are found by parsing the pages (so rewritten sections are picked up), each runs in
a fresh namespace in an empty folder, with two substitutions that keep them fast and offline:
the built-in model aliases load the tiny random model directory instead of SmolLM2, and a block
that talks to ``http://localhost:8000`` gets a real `grace-rag serve` process (tiny model) on a
free port. The folder holds what the README's quick start leaves behind: a copy of
``examples/docs`` and the ``.grace-index`` that `grace-rag index examples/docs` builds from it.
A block that needs a CUDA machine (the vLLM backend) is skipped where vLLM is not installed.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).parent / "server"))
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)
SHELL_BLOCK = re.compile(r"^```bash\n(.*?)^```", re.S | re.M)
HEADING = re.compile(r"^#+ (.+)$", re.M)
SERVER_URL = "localhost:8000"


def python_blocks(text: str) -> list[tuple[str, str]]:
    """``(id, code)`` of each python block; the id is the nearest heading above it (numbered if repeated)."""
    blocks, seen = [], {}
    for match in BLOCK.finditer(text):
        headings = HEADING.findall(text, 0, match.start())
        name = headings[-1].strip() if headings else "top"
        seen[name] = seen.get(name, 0) + 1
        blocks.append((name if seen[name] == 1 else f"{name} #{seen[name]}", match.group(1)))
    return blocks


PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
BLOCKS = [(f"{page.relative_to(REPO)}: {name}", code)
          for page in PAGES for name, code in python_blocks(page.read_text(encoding="utf-8"))]


def test_the_parser_finds_the_blocks():
    sample = "# A\n```python\nx = 1\n```\ntext\n## B\n```bash\nls\n```\n```python\ny = 2\n```\n```python\nz = 3\n```\n"
    assert python_blocks(sample) == [("A", "x = 1\n"), ("B", "y = 2\n"), ("B #2", "z = 3\n")]
    assert len(BLOCKS) >= 10 and any(name.startswith("docs/") for name, _ in BLOCKS)


@pytest.fixture(scope="module")
def tiny_models(model_dir, tmp_path_factory) -> dict[str, Path]:
    """Stand-ins for the built-in aliases: the tiny model, carrying each alias's own settings file
    (so the default's settings and score calibration apply as they do for the real one)."""
    import grace_rag.models as models

    out = {}
    for alias in {models.DEFAULT_MODEL, models.BASE_MODEL}:
        entry = models.BUILTIN_MODELS[alias]
        folder = tmp_path_factory.mktemp(f"tiny-{alias}")
        shutil.copytree(model_dir, folder, dirs_exist_ok=True)
        if entry.distribution == models.OWN_DISTRIBUTION:
            shutil.copy(models.builtin_path(alias) / models.ENCODER_FILE, folder / models.ENCODER_FILE)
        out[alias] = folder
    return out


def alias_tiny_model(monkeypatch, tiny_models: dict[str, Path]) -> None:
    """The built-in aliases resolve to their tiny stand-ins (the code under test is unchanged)."""
    import grace_rag.models as models

    real = models.resolve
    monkeypatch.setattr(models, "resolve", lambda name: tiny_models.get(str(name)) or real(name))


@pytest.fixture
def tiny_default_model(monkeypatch, tiny_models):
    alias_tiny_model(monkeypatch, tiny_models)


@pytest.fixture(scope="module")
def quickstart_folder(tiny_models, tmp_path_factory):
    """``examples/docs`` and the index `grace-rag index examples/docs` builds from it (default alias, tiny model)."""
    from grace_rag import GraceEncoder
    from grace_rag.indexes import GraceIndex
    from grace_rag.indexes.ingest import Indexer

    root = tmp_path_factory.mktemp("readme-quickstart")
    shutil.copytree(REPO / "examples" / "docs", root / "examples" / "docs")
    with pytest.MonkeyPatch.context() as patch:
        alias_tiny_model(patch, tiny_models)
        encoder = GraceEncoder(device="cpu")
        with GraceIndex.open_or_create(root / ".grace-index", encoder) as index:
            Indexer(index, encoder).run(root / "examples" / "docs")
    return root


@pytest.fixture(scope="module")
def readme_server(model_dir, tmp_path_factory):
    """`grace-rag serve` over a small index built with the tiny model (loaded by path in the server)."""
    from serve_support import ServerProcess

    from grace_rag import EncoderConfig, GraceEncoder
    from grace_rag.indexes import GraceIndex
    from grace_rag.indexes.ingest import Indexer

    root = tmp_path_factory.mktemp("readme-serve")
    (root / "docs").mkdir()
    (root / "docs" / "bees.txt").write_text("Honeybees dance to tell their sisters where the flowers are.")
    (root / "docs" / "bread.txt").write_text("Sourdough rises because wild yeasts make carbon dioxide.")
    # no rationale for queries, as the default model: a query embedded as a document is another vector
    encoder = GraceEncoder(str(model_dir), config=EncoderConfig(max_rationale_tokens=4, query_rationale_tokens=0),
                           device="cpu")
    with GraceIndex.open_or_create(root / "index", encoder) as index:
        Indexer(index, encoder).run(root / "docs")
    server = ServerProcess(["--index", str(root / "index"), "--device", "cpu"], root / "home")
    yield server
    server.stop()


@pytest.mark.parametrize("code", [code for _, code in BLOCKS], ids=[name for name, _ in BLOCKS])
def test_python_block_runs(code, tiny_default_model, quickstart_folder, tmp_path, monkeypatch, request):
    if 'backend="vllm"' in code and importlib.util.find_spec("vllm") is None:
        pytest.skip("the vLLM backend needs `pip install 'grace-rag[vllm]'` and a CUDA machine")
    work = tmp_path / "work"
    shutil.copytree(quickstart_folder, work)
    monkeypatch.chdir(work)
    for name in ("TIKTOKEN_CACHE_DIR", "DATA_GYM_CACHE_DIR"):  # as a user pastes it: no cache chosen for tiktoken
        monkeypatch.delenv(name, raising=False)
    if SERVER_URL in code:
        code = code.replace(SERVER_URL, f"127.0.0.1:{request.getfixturevalue('readme_server').port}")
    exec(compile(code, "docs", "exec"), {"__name__": "__docs__"})


SETTINGS_LINE = re.compile(r"^\*\*Default model settings\*\*.*?(?=^$)", re.M | re.S)


def readme_default_settings() -> dict[str, str]:
    """The ``name=value`` pairs of the README's "Default model settings" statement."""
    match = SETTINGS_LINE.search((REPO / "README.md").read_text(encoding="utf-8"))
    assert match, "README.md has no '**Default model settings**' statement"
    return dict(re.findall(r"`(\w+)=([^`]+)`", match.group(0)))


def test_the_readme_states_the_shipped_default_settings():
    import json

    from grace_rag.models import DEFAULT_MODEL, ENCODER_FILE, builtin_path

    shipped = json.loads((builtin_path(DEFAULT_MODEL) / ENCODER_FILE).read_text())["settings"]
    stated = readme_default_settings()
    assert {"layer", "pooling", "max_rationale_tokens", "query_rationale_tokens"} <= set(stated)
    for name, value in stated.items():
        assert name in shipped, f"README states {name}, which grace_encoder.json does not set"
        assert value == str(shipped[name]).lower() if isinstance(shipped[name], bool) else value == str(shipped[name]), \
            f"README says {name}={value}, the shipped grace_encoder.json says {shipped[name]!r}"


def test_python_md_lists_every_encoder_setting():
    import dataclasses

    from grace_rag.config import EncoderConfig

    text = (REPO / "docs" / "python.md").read_text(encoding="utf-8")
    table = text.split("## `EncoderConfig`", 1)[1].split("\n## ", 1)[0]
    missing = [f.name for f in dataclasses.fields(EncoderConfig) if f"`{f.name}`" not in table]
    assert missing == [], f"docs/python.md's EncoderConfig table lacks {missing}"


def test_the_results_page_is_what_the_benchmark_files_say():
    sys.path.insert(0, str(REPO))
    from benchmarks.results_page import PAGE, render_page

    assert PAGE.read_text(encoding="utf-8") == render_page(), "run python benchmarks/results_page.py"


def test_the_readme_is_a_front_door_and_its_links_resolve():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 250
    for page in PAGES + [REPO / "ARCHITECTURE.md", REPO / "CHANGELOG.md"]:
        text = page.read_text(encoding="utf-8")
        for target in re.findall(r"\]\(([^)#:]+\.(?:md|png))(?:#[^)]*)?\)", text):
            assert (page.parent / target).is_file(), f"{page.relative_to(REPO)} links to missing {target}"


def shell_commands(text: str, program: str) -> list[str]:
    """Every command of a page's bash blocks that runs ``program`` (continuation lines joined, comments cut)."""
    commands = []
    for block in SHELL_BLOCK.findall(text):
        for command in re.sub(r"\\\n\s*", " ", block).splitlines():
            if command.strip().startswith(program + " "):
                commands.append(command.split("  #")[0].strip())
    return commands


CURLS = [line for page in PAGES for line in shell_commands(page.read_text(encoding="utf-8"), "curl")]


def test_the_curl_lines_are_found():
    assert CURLS and all(SERVER_URL in line for line in CURLS)


@pytest.mark.parametrize("line", CURLS)
def test_curl_line_runs_as_pasted(line, readme_server):
    """The line as a user pastes it into bash (with $KEY set; the server was started without a key)."""
    import json
    import os
    import subprocess

    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    line = line.replace(SERVER_URL, f"127.0.0.1:{readme_server.port}")
    done = subprocess.run(["bash", "-c", line], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "KEY": "any-key"})
    assert done.returncode == 0, done.stderr
    reply = json.loads(done.stdout)
    assert reply["hits"], reply
    if '"explain": true' in line:
        assert "query_rationale" in reply and "rationale" in reply["hits"][0]
