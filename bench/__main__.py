"""``python -m bench``: every figure, one table (see bench/all.py)."""

from bench.all import main

main()
