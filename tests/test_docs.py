"""The README's usage example and the examples really run."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_readme_usage_example_runs(tmp_path, monkeypatch, capsys):
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, flags=re.DOTALL)
    assert blocks, "README has no python example"
    usage = blocks[0]
    assert len(usage.strip().splitlines()) <= 25
    monkeypatch.chdir(tmp_path)
    exec(compile(usage, "README.md", "exec"), {"__name__": "readme"})
    out = capsys.readouterr().out
    assert "version conflict on context 'cart-42'" in out
    assert out.splitlines()[-1] == "1"
    assert (tmp_path / "contexts.db").exists()


def test_readme_other_examples_run(tmp_path):
    # The usage example above runs in-process with its output checked; the others (typed
    # contexts, history) each run as a script of their own, as a reader would run them.
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, flags=re.DOTALL)[1:]
    assert any("history" in block for block in blocks), "README has no history example"
    for index, code in enumerate(blocks):
        script = tmp_path / f"readme_{index}.py"
        script.write_text(code)
        result = subprocess.run(
            [sys.executable, str(script)],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            check=False,
        )
        assert result.returncode == 0, f"README block {index + 1}:\n{result.stderr[-3000:]}"


def _python_blocks() -> list[tuple[str, int, str]]:
    """Every ```python block of docs/*.md: (file, line of the fence, code)."""
    found = []
    for doc in sorted((ROOT / "docs").glob("*.md")):
        text = doc.read_text()
        for match in re.finditer(r"^```python\n(.*?)^```", text, flags=re.DOTALL | re.MULTILINE):
            line = text.count("\n", 0, match.start()) + 1
            found.append((doc.name, line, match.group(1)))
    return found


@pytest.mark.timeout(90)
@pytest.mark.parametrize(
    ("doc", "line", "code"), _python_blocks(), ids=[f"{d}:{n}" for d, n, _ in _python_blocks()]
)
def test_docs_python_block_runs(doc, line, code, tmp_path):
    # Each block is a script of its own, run in an empty directory as a reader would.
    script = tmp_path / "block.py"
    script.write_text(code)
    result = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=80,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=False,
    )
    assert result.returncode == 0, f"{doc} line {line}:\n{result.stderr}"


@pytest.mark.timeout(120)
@pytest.mark.parametrize("example", ["quickstart.py", "quickstart_async.py", "two_processes.py"])
def test_example_runs(example, tmp_path):
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / example)],
        capture_output=True,
        text=True,
        timeout=100,
        cwd=tmp_path,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip()


def test_quickstart_shows_recovery_and_persistence(tmp_path):
    db = tmp_path / "q.db"
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "quickstart.py"), str(db)],
        capture_output=True,
        text=True,
        timeout=100,
        check=True,
    )
    assert "after a crash, visits = 2" in result.stdout
    assert "after a restart: version 3" in result.stdout


def test_two_processes_example_ends_with_every_increment(tmp_path):
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "two_processes.py")],
        capture_output=True,
        text=True,
        timeout=100,
        cwd=tmp_path,
        check=True,
    )
    assert "final: counter=400 (expected 400), version=400" in result.stdout
