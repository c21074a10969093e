"""flask_stars benchmarks: run by hand (``python -m bench``), never as tests. See bench/README.md."""
