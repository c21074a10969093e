"""Figure 2 alone: pre-checkout latency at 1 and 32 connections (see bench/payments.py).

    python -m bench.latency --db sqlite|postgres|both

The same runs as figure 1 at those two levels (payments flowing), without the 8-connection
level and without the throughput rows; ``python -m bench.payments`` prints both figures.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from bench import payments
from bench.common import Report, main


def run(db: str, workdir: Path, args: argparse.Namespace) -> Report:
    return payments.run(db, workdir, args, levels=payments.LATENCY_LEVELS, throughput=False)


if __name__ == "__main__":
    main("pre-checkout latency (2)", run, payments.add_args)
