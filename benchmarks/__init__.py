"""Benchmarks of the tap against the local emulator: `python -m benchmarks.run`."""
