"""The parts of `scripts/benchmark.py`, one module per job.

- `models`: the backbones to time and their PyTorch references;
- `methods`: the training methods, each built on a backbone;
- `measure`: interleaved timing and memory sampling;
- `environment`: the machine and library versions a report records;
- `report`: ratios to supervised and the markdown section of a backend.

A new benchmark row is one builder in `models` or `methods` and its entry in
that module's table.
"""
