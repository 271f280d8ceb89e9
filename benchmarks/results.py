"""Shared by the benchmark scripts: the machine's description and RESULTS.md sections."""
import datetime
import os
import platform
import re
from pathlib import Path

RESULTS = Path(__file__).with_name("RESULTS.md")


def cpu_name():
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_line(extra=()):
    import numba
    import numpy
    parts = [cpu_name(), f"{os.cpu_count()} cores", f"Python {platform.python_version()}",
             f"NumPy {numpy.__version__}", f"Numba {numba.__version__}", *extra,
             datetime.date.today().isoformat()]
    return ", ".join(parts)


def table(header, rows):
    """A Markdown table from a header tuple and rows of already-formatted cells."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def write_section(name, markdown):
    """Replace the section between ``<!-- name -->`` markers in RESULTS.md (or append it)."""
    start, end = f"<!-- {name} -->", f"<!-- /{name} -->"
    block = f"{start}\n{markdown.strip()}\n{end}"
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n\nWritten by the scripts in this folder; rerun them to refresh.\n"
    pattern = re.compile(re.escape(start) + ".*?" + re.escape(end), re.S)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block + "\n"
    RESULTS.write_text(text)
    print(f"wrote the {name} section of {RESULTS}")
