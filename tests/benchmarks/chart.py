"""Chart durable updates/s against concurrent callers: `uv run python -m tests.benchmarks.chart`.

For 1, 2, 4, 8, 16 and 32 callers, each on its own context, measures ours (durable `set` on
SQLite, synchronous=FULL) and the raw baseline (each caller its own sqlite3 connection doing
`BEGIN IMMEDIATE; INSERT OR REPLACE; COMMIT` of the same encoded bytes), then draws both to
`docs/performance.png` (or `--out PATH`). Not a test.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import matplotlib as mpl

mpl.use("Agg")
import matplotlib.pyplot as plt

from tests.benchmarks.__main__ import _encoded, durable_rate, raw_sqlite_commit, threaded_rate

CALLERS = (1, 2, 4, 8, 16, 32)


def measure(seconds: float) -> tuple[list[float], list[float]]:
    """Ops/s of ours and of the raw baseline for each number of callers."""
    ours, raw = [], []
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        for callers in CALLERS:
            ops = [
                raw_sqlite_commit(workdir / f"raw{callers}.db", _encoded()) for _ in range(callers)
            ]
            raw.append(threaded_rate(ops, seconds))
            ours.append(durable_rate(workdir / f"ours{callers}.db", callers, seconds))
            print(f"{callers:>3} callers: ours {ours[-1]:8.0f}/s  raw {raw[-1]:8.0f}/s")
    return ours, raw


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.benchmarks.chart", description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("docs/performance.png"))
    parser.add_argument("--seconds", type=float, default=2.0, help="per measurement")
    args = parser.parse_args()
    ours, raw = measure(args.seconds)
    figure, axes = plt.subplots(figsize=(7, 4.2))
    axes.plot(CALLERS, ours, marker="o", label="context-runtime: durable set (group commit)")
    axes.plot(CALLERS, raw, marker="s", label="raw sqlite3: one commit per op, own connection")
    axes.set_xscale("log", base=2)
    axes.set_ylim(bottom=0)
    axes.set_xticks(CALLERS, [str(c) for c in CALLERS])
    axes.set_xlabel("concurrent callers (one context each)")
    axes.set_ylabel("durable updates / s")
    axes.set_title("Durable updates on SQLite (synchronous=FULL, WAL), 2 cores")
    axes.grid(visible=True, alpha=0.3)
    axes.legend()
    figure.tight_layout()
    figure.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
