"""rnnkit benchmark suite: rnnkit against PyTorch, ONNX Runtime and numpy's SGEMM, in one run.

Entry point: ``python -m benchmarks.run`` (see ``--help``). The modules:

- ``configs``      the grid (shapes, cells, modes), FLOP counts and the issue-3 targets
- ``problems``     one problem's inputs and weights, and rnnkit's callables for it
- ``peers_torch``  the same problem in ``torch.nn`` (weights copied from rnnkit's)
- ``peers_ort``    the torch layer exported to ONNX and run by ONNX Runtime
- ``sgemm``        numpy's float32 matmul rate and the matrix-vector baseline
- ``timing``       warm-up, alternating repeats, medians
- ``worker``       everything for one thread count, run in its own subprocess
- ``memory``       peak memory of one train step, one subprocess per measurement
- ``report``       tables, target verdicts, JSON, plot
"""
