"""Benchmarks (run as scripts: `.venv/bin/python bench/<name>.py`) and the harness they share with the tests:
the real apps they start (real_apps) and the delivery drills (drill). bench/ imports nothing from tests/."""
