"""The malformed-spec table: every file in tests/malformed/ is a spec with its exact diagnostics.

Each case ``tests/malformed/<name>.yaml`` ends with ``# expect: <diagnostic>`` comment lines, one
per diagnostic, in the order promptc prints them (``file:line:col: key.path: message (hint)``).
Files starting with ``_`` are helpers the cases refer to (bases to extend, data files).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from promptc.errors import PromptcErrors
from promptc.lower import compile_spec
from promptc.validate import MESSAGES

MALFORMED = Path(__file__).parent / "malformed"
EXPECT = "# expect: "


def _cases() -> list[Path]:
    return sorted(p for p in MALFORMED.glob("*.yaml") if not p.name.startswith("_"))


def _expected(path: Path) -> list[str]:
    return [
        line[len(EXPECT):]
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.startswith(EXPECT)
    ]


def test_the_table_is_large() -> None:
    assert len(_cases()) >= 30


@pytest.mark.parametrize("case", _cases(), ids=lambda p: p.stem)
def test_malformed_spec_diagnostics(case: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    expected = _expected(case)
    assert expected, f"{case.name} has no '# expect:' lines"
    monkeypatch.chdir(MALFORMED)
    with pytest.raises(PromptcErrors) as info:
        compile_spec(case.name, max_errors=None)
    assert info.value.format().splitlines() == expected


def test_messages_table_has_no_trailing_periods() -> None:
    for code, message in MESSAGES.items():
        assert not message.endswith("."), code
