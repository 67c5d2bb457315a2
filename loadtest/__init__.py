"""Load-test tooling: ghz configs (ghz/), the data generator (generate.py)."""
