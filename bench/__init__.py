"""sensorlink benchmarks: each figure beside a baseline measured in the same run (issue 5).

Not part of the test suite: run ``python -m bench.run`` (see bench/README.md).
"""
