"""Static guard: no ``float`` in Payback's source (reliability test 25, "no float in money paths").

Every module under ``src/payback`` is parsed (never imported) and refused if it calls ``float(...)``
(also as ``builtins.float(...)``) or contains a float literal such as ``0.1`` or ``1e3``. Amounts
are ``int`` minor units and rates are ``Decimal``; a float anywhere in the package is either a bug
or a deliberate exception that must be written down in ``ALLOWED`` with the reason.

Not caught on purpose: ``float`` as a type annotation (harmless) and floats made at run time by
``/`` on ints — that one is left to review and to the type-checked ``Money`` API.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "payback"

#: Files (relative to src/payback, POSIX separators) allowed to use floats, with the reason.
#: Keep it empty unless a module truly needs one (e.g. a timing metric), and never money code.
ALLOWED: dict[str, str] = {}


def float_uses(source: str, filename: str = "<string>") -> list[tuple[int, str]]:
    """Line numbers and a description of every ``float(`` call and float literal in ``source``."""
    found = []
    for node in ast.walk(ast.parse(source, filename=filename)):
        if isinstance(node, ast.Call) and _is_float_name(node.func):
            found.append((node.lineno, "float(...) call"))
        elif isinstance(node, ast.Constant) and isinstance(node.value, (float, complex)):
            kind = "float" if isinstance(node.value, float) else "complex"
            found.append((node.lineno, f"{kind} literal {ast.get_source_segment(source, node)}"))
    return sorted(found)


def _is_float_name(func: ast.expr) -> bool:
    if isinstance(func, ast.Name):
        return func.id == "float"
    return (
        isinstance(func, ast.Attribute)
        and func.attr == "float"
        and isinstance(func.value, ast.Name)
        and func.value.id == "builtins"
    )


def offences() -> list[str]:
    lines = []
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC).as_posix()
        if rel in ALLOWED:
            continue
        for lineno, what in float_uses(path.read_text(encoding="utf-8"), str(path)):
            lines.append(f"src/payback/{rel}:{lineno}: {what}")
    return lines


def test_source_tree_is_scanned() -> None:
    # Guards against a vacuous pass if the package moves.
    scanned = {p.relative_to(SRC).as_posix() for p in SRC.rglob("*.py")}
    assert "money.py" in scanned


def test_allow_list_names_existing_files() -> None:
    missing = [rel for rel in ALLOWED if not (SRC / rel).is_file()]
    assert not missing, f"ALLOWED names files that do not exist: {missing}"


def test_no_float_in_payback_source() -> None:
    found = offences()
    for line in found:
        print(line)
    assert not found, (
        "float used in src/payback (add to ALLOWED only with a reason):\n" + "\n".join(found)
    )


def test_detector_finds_calls_and_literals() -> None:
    source = "import builtins\nx = float('1.5')\ny = 0.1\nz = 1e3\nw = builtins.float(2)\nv = 2j\n"
    assert [line for line, _ in float_uses(source)] == [2, 3, 4, 5, 6]


def test_detector_ignores_annotations_strings_and_decimal() -> None:
    source = (
        "from decimal import Decimal\n"
        "def f(x: float) -> float:\n"
        "    '''float(1.5) in a docstring'''\n"
        "    return Decimal('0.25') * 3 // 2\n"
    )
    assert float_uses(source) == []
