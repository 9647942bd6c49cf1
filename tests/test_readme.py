"""The README's Python examples run, in order, in one namespace (as a reader would)."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_python_blocks_run(capsys: object) -> None:
    text = README.read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert len(blocks) >= 5
    ns: dict[str, object] = {}
    for i, block in enumerate(blocks):
        try:
            exec(compile(block, f"README.md python block {i + 1}", "exec"), ns)
        except Exception as exc:  # pragma: no cover - the message says which block
            raise AssertionError(f"README python block {i + 1} failed: {exc!r}\n{block}") from exc
    bus = ns.get("bus")
    if bus is not None:
        bus.close()  # type: ignore[attr-defined]
