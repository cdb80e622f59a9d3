"""Benchmarks that print figures (`make bench`): speed and accuracy targets live here, not in
timed tests that flake."""
