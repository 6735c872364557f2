"""Two checkouts side by side: a benchmark of each run in turn (A B, B A, A B, ...) in one session,
each round's figures, their medians and the ratios B/A, so that a comparison holds while this
machine's speed drifts (it moves by a third within minutes).

Usage, from any checkout (each tree runs its own copy of the benchmark and its own mailbot):

    git worktree add --detach /tmp/ab-old <commit>
    .venv/bin/python bench/ab.py /tmp/ab-old . [--what end-to-end|intake|sending|render]
        [--rounds 5] [--size 2000]

`end-to-end`: `bench/bench.py --sizes SIZE` (Dovecot, `mailbot run`, aiosmtpd): requests per
second and the CPU per request of each process. `intake`: `bench/profile_intake.py --n SIZE` (the
intake thread alone on pre-parsed requests, SQLite): its CPU per request. `sending`:
`bench/profile_sending.py --n SIZE` (the outbox draining SIZE requests' mail to aiosmtpd in another
process): the CPU per mail of the sending side and of the SMTP server. `render`: this checkout's
`bench/profile_render.py --n SIZE --tree TREE` (the replies' templates alone, rendered by each
tree's code from the contexts its intake gave them): their CPU per request.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

END_TO_END = (
    "end_to_end_per_s",
    "cpu_ms_per_request_intake",
    "cpu_ms_per_request_parse_worker",
    "cpu_ms_per_request_sending",
    "cpu_ms_per_request_smtp_server",
)
INTAKE = ("intake_cpu_ms_per_request", "intake_per_s")
_INTAKE_LINE = re.compile(r"([\d.]+) ms CPU per request, (\d+) requests/s")
SENDING = ("sending_cpu_ms_per_mail", "smtp_server_cpu_ms_per_mail")
_SENDING_LINE = re.compile(r"([\d.]+) ms CPU per mail sending, ([\d.]+) ms in the SMTP server")
RENDER = ("render_cpu_ms_per_request",)
_RENDER_LINE = re.compile(r"([\d.]+) ms CPU per request rendering")
HERE = Path(__file__).resolve().parent


def _figures(
    tree: Path, command: list[str], line: re.Pattern[str], keys: tuple[str, ...]
) -> dict[str, float]:
    """Run `command` in `tree` with that tree's own mailbot first on the path; the numbers of the
    first line of its output that `line` matches, named by `keys`."""
    done = subprocess.run(
        [sys.executable, *command],
        cwd=tree,
        env={**os.environ, "PYTHONPATH": str(tree)},
        capture_output=True,
        text=True,
        check=True,
    )
    found = line.search(done.stdout)
    if found is None:
        raise RuntimeError(f"no figure in the output of {tree}: {done.stdout}{done.stderr}")
    return {key: float(value) for key, value in zip(keys, found.groups(), strict=True)}


def run_once(tree: Path, what: str, size: int) -> dict[str, float]:
    """One run of the benchmark in `tree`, with that tree's own mailbot first on the path."""
    if what == "render":
        command = [str(HERE / "profile_render.py"), "--n", str(size), "--tree", str(tree)]
        return _figures(tree, command, _RENDER_LINE, RENDER)
    if what == "intake":
        return _figures(tree, ["bench/profile_intake.py", "--n", str(size)], _INTAKE_LINE, INTAKE)
    if what == "sending":
        return _figures(tree, ["bench/profile_sending.py", "--n", str(size)], _SENDING_LINE, SENDING)
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        subprocess.run(
            [sys.executable, "bench/bench.py", "--sizes", str(size), "--json", out.name],
            cwd=tree,
            env={**os.environ, "PYTHONPATH": str(tree)},
            capture_output=True,
            text=True,
            check=True,
        )
        result = json.loads(Path(out.name).read_text())["results"][0]
    return {key: float(result[key]) for key in END_TO_END}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("a", type=Path, help="checkout A (the reference, e.g. the old code)")
    parser.add_argument("b", type=Path, help="checkout B (the candidate)")
    parser.add_argument("--what", choices=("end-to-end", "intake", "sending", "render"), default="end-to-end")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--size", type=int, default=2000)
    parser.add_argument("--json", help="write every round's figures to this file")
    args = parser.parse_args()
    trees = {"A": args.a.resolve(), "B": args.b.resolve()}
    keys = {"intake": INTAKE, "sending": SENDING, "render": RENDER}.get(args.what, END_TO_END)
    runs: dict[str, list[dict[str, float]]] = {"A": [], "B": []}
    print(f"A = {trees['A']}\nB = {trees['B']}\n{args.what}, size {args.size}, {args.rounds} rounds")
    for i in range(args.rounds):
        # Alternate which goes first, so that neither always runs in the other's wake.
        for side in ("A", "B") if i % 2 == 0 else ("B", "A"):
            runs[side].append(run_once(trees[side], args.what, args.size))
        a, b = runs["A"][-1], runs["B"][-1]
        print(f"round {i + 1}: " + "; ".join(f"{k} A {a[k]:g} B {b[k]:g}" for k in keys), flush=True)
    print("\nfigure | A: median (min-max) | B: median (min-max) | B/A of medians | B/A by round (min-max)")
    for k in keys:
        va, vb = [r[k] for r in runs["A"]], [r[k] for r in runs["B"]]
        ma, mb = statistics.median(va), statistics.median(vb)
        ratios = [rb[k] / ra[k] for ra, rb in zip(runs["A"], runs["B"], strict=True) if ra[k]]
        spread = f"{statistics.median(ratios):.3f} ({min(ratios):.3f}-{max(ratios):.3f})" if ratios else "-"
        each = f"{ma:g} ({min(va):g}-{max(va):g}) | {mb:g} ({min(vb):g}-{max(vb):g})"
        print(f"{k} | {each} | {mb / ma:.3f} | {spread}")
    if args.json:
        Path(args.json).write_text(json.dumps({"trees": {k: str(v) for k, v in trees.items()}, **runs}))


if __name__ == "__main__":
    main()
