"""Generate src/muster/golang/isprint.py from Go's strconv/isprint.go tables."""

from __future__ import annotations

import re
import sys
from pathlib import Path

GOROOT = Path(sys.argv[1] if len(sys.argv) > 1 else "/usr/lib/go-1.19")
OUT = Path(__file__).resolve().parents[2] / "src/muster/golang/isprint.py"


def main() -> None:
    src = (GOROOT / "src/strconv/isprint.go").read_text()
    tables = {}
    for name in ("isPrint16", "isNotPrint16", "isPrint32", "isNotPrint32", "isGraphic"):
        body = re.search(r"var " + name + r" = \[\]uint\d+\{(.*?)\n\}", src, re.S)
        assert body, name
        text = re.sub(r"//[^\n]*", "", body.group(1))
        tables[name] = [int(tok, 0) for tok in re.findall(r"0x[0-9a-fA-F]+", text)]
    lines = [
        '"""Go 1.19 strconv.IsPrint tables (generated from strconv/isprint.go; do not edit)."""',
        "",
        "from __future__ import annotations",
        "",
        "# fmt: off",
    ]
    for name, values in tables.items():
        snake = re.sub(r"([A-Z])", r"_\1", name).upper()
        lines.append(f"{snake}: tuple[int, ...] = (")
        for i in range(0, len(values), 10):
            lines.append("    " + ", ".join(f"0x{v:04x}" for v in values[i : i + 10]) + ",")
        lines.append(")")
    lines.append("# fmt: on")
    OUT.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
