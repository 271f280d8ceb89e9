"""The first run on a fresh Numba cache: how long ``minirec lesson4`` says nothing, and how long
Numba compiles before it trains.

Run:  python benchmarks/first_run.py [--checkout DIR ...] [--rounds 2] [--until first|all] [--write]

Each run starts ``minirec lesson4`` (the installed script's ``main``, from the checkout given)
in a new process with a new, empty ``NUMBA_CACHE_DIR``, reads what it prints line by line as it
comes, and stops it: after the first model's first "Epoch" line (``--until first``), or after
the last model's (``--until all``, the default: by then every kernel lesson4 uses is compiled;
the rest of the run compiles nothing). It reports

* first epoch: seconds from the start of the process to the first "Epoch 1/" line;
* longest silence: the longest gap between two printed lines (or the start and the first
  line) before that line;
* compile, to the first epoch / in all: the seconds Numba spent compiling (its outermost
  compile events, counted by a listener the process registers before minirec starts; a
  function loaded from the cache sends none), and in brackets the CPU seconds the process
  used meanwhile: Numba compiles on one thread, so on a busy machine these stay near what an
  idle one would take while the seconds grow.

``--checkout`` takes any number of folders holding a minirec tree (this one by default), for
instance ``git worktree add /tmp/before 828fd4d`` (or ``mkdir /tmp/before && git archive 828fd4d |
tar -x -C /tmp/before``) for an older commit, so that before and after
are measured in one sitting. The checkouts take turns, ``--rounds`` times over, so that a
machine that gets busier or quieter meanwhile weighs on each alike. ``--write`` rewrites the
first_run section of benchmarks/RESULTS.md.
"""
import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from results import machine_line, table, write_section

HERE = Path(__file__).resolve().parent
# The process under test: a listener on Numba's compile events, writing each outermost compile's
# end time, seconds and CPU seconds to $FIRST_RUN_COMPILES at once (the run is stopped, not
# ended), then
# minirec's command line as the installed script starts it.
BOOTSTRAP = """
import os, sys, time
from numba.core import event

class Compiles(event.Listener):
    depth = 0

    def on_start(self, ev):
        self.depth += 1
        if self.depth == 1:
            self.start, self.cpu = time.monotonic(), time.process_time()

    def on_end(self, ev):
        self.depth -= 1
        if self.depth == 0:
            with open(os.environ["FIRST_RUN_COMPILES"], "a") as f:
                f.write(f"{time.monotonic()} {time.monotonic() - self.start} "
                        f"{time.process_time() - self.cpu}\\n")

event.register("numba:compile", Compiles())
from minirec.tools.cli import main
sys.argv = ["minirec", *sys.argv[1:]]
sys.exit(main())
"""


def label(checkout):
    """The checkout's commit, with "+ edits" where its tree differs from it."""
    def git(*args):
        return subprocess.run(["git", "-C", str(checkout), *args], capture_output=True,
                              text=True).stdout.strip()
    commit = git("rev-parse", "--short", "HEAD") or checkout.name
    return commit + (" + edits" if git("status", "--porcelain", "--untracked-files=no") else "")


def one_run(checkout, until, data, timeout):
    """Start lesson4 from ``checkout`` on an empty Numba cache; returns a dict of the figures
    (seconds), or raises RuntimeError with the run's last lines if it ended or timed out first."""
    with tempfile.TemporaryDirectory(prefix="first-run-") as tmp:
        compiles = Path(tmp) / "compiles.txt"
        env = dict(os.environ, NUMBA_CACHE_DIR=str(Path(tmp) / "numba"), PYTHONUNBUFFERED="1",
                   PYTHONPATH=str(checkout), FIRST_RUN_COMPILES=str(compiles))
        command = [sys.executable, "-c", BOOTSTRAP, "lesson4", "--data", data,
                   "--weights-dir", str(Path(tmp) / "weights")]
        start = time.monotonic()
        proc = subprocess.Popen(command, env=env, cwd=tmp, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, bufsize=1)
        watchdog = threading.Timer(timeout, proc.kill)  # a run that hangs ends the loop below
        watchdog.start()
        lines, last, silence, first_epoch = [], start, 0.0, None
        models, trained = 0, 0  # lesson4's model sections begun; of those, ones past an epoch
        needed = 1 if until == "first" else 3  # lesson4's models: dot product, biases, net
        try:
            for line in proc.stdout:
                now = time.monotonic()
                lines.append(line.rstrip())
                if first_epoch is None:
                    silence = max(silence, now - last)
                last = now
                models += line.startswith("=== ")
                if line.startswith("Epoch "):
                    first_epoch = first_epoch or now
                    trained = models
                    if trained >= needed:
                        break
        finally:
            watchdog.cancel()
            proc.kill()
            proc.wait()
        if trained < needed:
            tail = "\n".join(lines[-15:])
            raise RuntimeError(f"lesson4 from {checkout} stopped before the figures were in:\n{tail}")
        events = [tuple(map(float, row.split())) for row in compiles.read_text().split("\n") if row] \
            if compiles.exists() else []
        before = [e for e in events if e[0] <= first_epoch]
        return {"first epoch": first_epoch - start, "longest silence": silence,
                "compile to first epoch": (sum(e[1] for e in before), sum(e[2] for e in before)),
                "compile in all": (sum(e[1] for e in events), sum(e[2] for e in events)),
                "lines": lines}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkout", action="append", type=Path,
                        help="a folder holding a minirec tree (repeat for several; default: this one)")
    parser.add_argument("--rounds", type=int, default=2, help="runs of each checkout, in turn")
    parser.add_argument("--until", choices=("first", "all"), default="all",
                        help="stop after the first model's first epoch, or the last model's")
    parser.add_argument("--data", default="ml-latest-small")
    parser.add_argument("--timeout", type=float, default=900, help="seconds a run may take")
    parser.add_argument("--show", action="store_true", help="print each run's lines as well")
    parser.add_argument("--write", action="store_true", help="rewrite the first_run section of RESULTS.md")
    args = parser.parse_args()
    checkouts = [c.resolve() for c in (args.checkout or [HERE.parent])]
    names = {c: label(c) for c in checkouts}
    rows = []
    for round_ in range(1, args.rounds + 1):
        for checkout in checkouts:
            load = os.getloadavg()[0]
            r = one_run(checkout, args.until, args.data, args.timeout)
            if args.show:
                print("\n".join(r.pop("lines")))
            rows.append((names[checkout], round_, f"{load:.1f}", f"{r['first epoch']:.1f}",
                         f"{r['longest silence']:.1f}", "%.1f (%.1f)" % r["compile to first epoch"],
                         "%.1f (%.1f)" % r["compile in all"] if args.until == "all" else "-"))
            print(" | ".join(map(str, rows[-1])), flush=True)
    markdown = table(HEADER, rows)
    print("\n" + markdown)
    if args.write:
        write_section("first_run", section(args, checkouts, names, markdown))


HEADER = ("checkout", "round", "load before", "first epoch (s)", "longest silence before it (s)",
          "compile to first epoch: s (CPU s)", "compile, all of lesson4: s (CPU s)")


def section(args, checkouts, names, markdown):
    """The first_run section of RESULTS.md: the command, the machine, what a run is, the table."""
    command = " ".join(["python benchmarks/first_run.py",
                        *(f"--checkout {c}" for c in (checkouts if args.checkout else [])),
                        f"--rounds {args.rounds} --until {args.until} --write"])
    which = "; ".join(f"{names[c]}: {c}" for c in checkouts)
    last = "first" if args.until == "first" else "last"
    return f"""## The first run on a fresh Numba cache (first_run.py)

`{command}` on {machine_line()}. Checkouts: {which}.
Each run: `minirec lesson4 --data {args.data}` in a new process on an empty `NUMBA_CACHE_DIR`,
stopped after the {last} model's first epoch; the checkouts took turns, round after round. "load before": the machine's 1-minute
load average as the run started; other work slows a compile in seconds, hardly in CPU seconds
(Numba compiles on one thread), so the CPU seconds are what the compile costs an idle machine.

{markdown}
"""

if __name__ == "__main__":
    main()
