"""mypy --strict understands typed handles: the model comes out of every future, and a
program that confuses models is reported (tests/typing_examples/)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "tests" / "typing_examples"


@pytest.fixture(scope="module")
def mypy_output() -> list[str]:
    files = [str(EXAMPLES / "typed_ok.py"), str(EXAMPLES / "typed_error.py")]
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-error-summary", *files],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=ROOT,
        check=False,
    )
    assert result.returncode in (0, 1), result.stderr  # 1: errors found, 2: mypy failed
    return result.stdout.splitlines()


@pytest.mark.timeout(300)
def test_the_typed_example_type_checks_and_reveals_the_model(mypy_output):
    ok = [line for line in mypy_output if "typed_ok.py" in line]
    source = (EXAMPLES / "typed_ok.py").read_text().splitlines()
    line = next(n for n, text in enumerate(source, 1) if text.strip().startswith("reveal_type("))
    assert len(ok) == 1, ok
    revealed = 'note: Revealed type is "tests.typing_examples.typed_ok.Cart"'
    assert ok[0].endswith(f"typed_ok.py:{line}: {revealed}")


@pytest.mark.timeout(300)
def test_mypy_reports_the_deliberate_type_errors(mypy_output):
    errors = [line for line in mypy_output if "typed_error.py" in line]
    assert len(errors) == 3, errors
    assert 'expression has type "str", variable has type "int"' in errors[0]
    assert 'has incompatible type "Order"; expected "Cart"' in errors[1]
    assert '"Cart" has no attribute "number"' in errors[2]
