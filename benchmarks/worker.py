"""Everything measured at one thread count, in its own process.

``python -m benchmarks.worker SPEC.json OUT.json`` is started by ``benchmarks.run`` with every
thread-count variable set (see env.py) before numpy, torch or rnnkit load. It measures the
SGEMM rate, then for each grid cell checks rnnkit against the torch peer and times all peers
in alternation; it writes the raw results to OUT.json and progress to stderr.
"""
from __future__ import annotations

import json
import os
import platform
import sys
import tempfile
import time
import traceback
from typing import Callable, Dict, List, Optional

import numpy as np

import rnnkit
from benchmarks import configs as C
from benchmarks import problems as P
from benchmarks import sgemm
from benchmarks.fma_peak import fma_peak_gflops
from benchmarks.timing import Budget, time_alternating
from rnnkit.nn.cells import CELL_CLASSES

# float32 kernels that agree with torch's to this fraction of each tensor's largest entry are
# correct; differences beyond it mean a wrong kernel, not rounding (issue 3 asks for 1e-3).
CHECK_TOLERANCE = 1e-3


class CheckFailed(RuntimeError):
    """rnnkit's result disagrees with the peer's beyond CHECK_TOLERANCE."""


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _cpu_model_proc() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


class Worker:
    """Runs the grid at one thread count; optional peers are None when not importable."""

    def __init__(self, spec: dict) -> None:
        self.spec = spec
        self.threads: int = spec["threads"]
        self.budget = Budget(**spec["budget"])
        rnnkit.set_num_threads(self.threads)
        self.torch = self.ort = None
        self.peer_notes: Dict[str, str] = {}
        if spec["use_torch"]:
            try:
                from benchmarks import peers_torch
                peers_torch.set_threads(self.threads)
                self.torch = peers_torch
            except ImportError as e:
                self.peer_notes["torch"] = f"not installed ({e})"
        else:
            self.peer_notes["torch"] = "disabled (--no-torch)"
        if spec["use_ort"] and self.torch is not None:
            try:
                from benchmarks import peers_ort
                self.ort = peers_ort
            except ImportError as e:
                self.peer_notes["ort"] = f"not installed ({e})"
        elif spec["use_ort"]:
            self.peer_notes["ort"] = "needs torch to export the model"
        else:
            self.peer_notes["ort"] = "disabled (--no-ort)"
        self.onnx_dir = tempfile.TemporaryDirectory(prefix="rnnkit-bench-onnx-")
        self.cases: List[dict] = []

    # ------------------------------------------------------------ one grid cell
    def _check(self, case: dict, got: P.Arrays, ref: P.Arrays, peer: str) -> None:
        errors = P.max_errors(got, ref)
        worst = max((e["rel"] for e in errors.values()), default=0.0)
        case["check"] = {"peer": peer, "errors": errors, "max_rel": worst,
                         "ok": worst <= CHECK_TOLERANCE}
        if worst > CHECK_TOLERANCE:
            bad = ", ".join(f"{k}: abs {e['abs']:.3g} rel {e['rel']:.3g}"
                            for k, e in errors.items() if e["rel"] > CHECK_TOLERANCE)
            msg = (f"CHECK FAILED {case['config']} {case['cell']} {case['mode']} "
                   f"({self.threads} thr): rnnkit vs {peer}: {bad}")
            _log("!" * 8 + " " + msg)
            if not self.spec["keep_going"]:
                raise CheckFailed(msg)

    def _run_case(self, case: dict, rnnkit_fn: Callable[[], P.Arrays],
                  peers: Dict[str, Callable[[], Callable[[], P.Arrays]]],
                  ref_peer: Optional[str], cross_check: Dict[str, str]) -> None:
        """Check, then time rnnkit and every peer that could be built.

        ``peers`` maps a name to a factory (building a peer may fail: an export error, a
        missing operator; that peer is then reported and skipped). ``ref_peer`` is the peer
        rnnkit is checked against; ``cross_check`` maps other peers to the reference their own
        outputs are compared with (recorded, not fatal).
        """
        first: Dict[str, float] = {}
        outputs: Dict[str, P.Arrays] = {}
        fns: Dict[str, Callable[[], P.Arrays]] = {"rnnkit": rnnkit_fn}
        case["peer_errors"] = {}
        for name, factory in peers.items():
            try:
                fns[name] = factory()
            except Exception as e:  # noqa: BLE001 - any failure of a peer only drops that peer
                case["peer_errors"][name] = f"{type(e).__name__}: {e}"
                _log(f"  {name} unavailable: {type(e).__name__}: {e}")
        for name, fn in fns.items():
            t0 = time.perf_counter()
            outputs[name] = fn()
            first[name] = time.perf_counter() - t0
        if ref_peer in outputs:
            self._check(case, outputs["rnnkit"], outputs[ref_peer], ref_peer)
        else:
            case["check"] = {"peer": None, "ok": None, "note": "no peer to check against"}
        case["cross_check"] = {}
        for name, against in cross_check.items():
            if name in outputs and against in outputs:
                errs = P.max_errors(outputs[name], outputs[against])
                case["cross_check"][name] = {"against": against, "errors": errs}
                worst = max((e["rel"] for e in errs.values()), default=0.0)
                if worst > CHECK_TOLERANCE:  # a peer's own error: its timing is suspect
                    _log(f"  warning: {name} differs from {against} by {worst:.1e} relative")
        del outputs
        timings = time_alternating(fns, first, self.budget)
        case["timings"] = {k: t.to_json() for k, t in timings.items()}
        parts = ", ".join(f"{k} {t.median * 1e3:.3f} ms" for k, t in timings.items())
        chk = case["check"].get("max_rel")
        _log(f"[{self.threads} thr] {case['config']:8s} {case['cell']:4s} {case['mode']:8s}: "
             f"{parts}" + (f"  (check max rel {chk:.1e})" if chk is not None else ""))

    def _sequence_case(self, cfg: C.Config, cell: str, mode: str) -> dict:
        p = P.make_problem(cfg, cell, varlen=(mode == "varlen"))
        case = {"config": cfg.name, "cell": cell, "mode": mode, "threads": self.threads,
                "shape": {"B": cfg.batch, "T": cfg.steps, "I": cfg.input_size,
                          "H": cfg.hidden_size},
                "lengths": None if p.lengths is None else p.lengths.tolist(),
                "flops": C.flops(cfg, cell, mode, p.lengths)}
        peers: Dict[str, Callable[[], Callable[[], P.Arrays]]] = {}
        tp, ort = self.torch, self.ort
        ref = cross = None
        if mode == "forward":
            rk = P.rnnkit_forward(p)
            if tp:
                peers["torch"] = lambda: tp.forward(p)
                ref = "torch"
            if ort:
                peers["ort"] = lambda: ort.forward(p, ort.export(p, self.onnx_dir.name),
                                                   self.threads)
                cross = {"ort": "torch"}
        elif mode == "train":
            rk = P.rnnkit_train(p)
            if tp:
                peers["torch"] = lambda: tp.train(p)
                ref = "torch"
        else:  # varlen: checked against torch's packed path, timed against it and padded
            rk = P.rnnkit_train(p)
            if tp:
                peers["torch_packed"] = lambda: tp.train_packed(p)
                peers["torch_padded"] = lambda: tp.train(p)
                ref = "torch_packed"
        self._run_case(case, rk, peers, ref, cross or {})
        return case

    def _step_case(self, cell: str) -> dict:
        cfg = C.STEP_CONFIG
        p = P.make_step_problem(cfg, cell)
        case = {"config": "step", "cell": cell, "mode": "step", "threads": self.threads,
                "shape": {"B": 1, "T": 1, "I": cfg.input_size, "H": cfg.hidden_size},
                "lengths": None, "flops": C.flops(cfg, cell, "forward"),
                "rnnkit_api": f"rnnkit.nn.{CELL_CLASSES[C.cell_spec(cell).family].__name__} "
                              "in eval mode"}
        peers: Dict[str, Callable[[], Callable[[], P.Arrays]]] = {}
        if self.torch:
            tp = self.torch
            peers["torch"] = lambda: tp.step(p)
        peers["numpy_matvec"] = lambda: sgemm.matvec(p)
        # rnnkit's row is the public cell layer (what streaming users call: weights packed
        # once); the sequence kernel with T=1 is shown beside it, as it repacks every call.
        peers["rnnkit_ops_T1"] = lambda: P.rnnkit_step(p)
        self._run_case(case, P.rnnkit_nn_cell(p), peers, "torch" if self.torch else None,
                       {"rnnkit_ops_T1": "torch"} if self.torch else {})
        return case

    # ------------------------------------------------------------ the whole grid
    def run(self) -> dict:
        spec = self.spec
        # The load average before and after: on a shared machine, other tenants' runnable
        # threads steal cores, which hurts multi-threaded kernels most (each step's barrier
        # waits for the slowest thread). The report prints it next to each table.
        load_before = os.getloadavg()
        n = spec["sgemm_n"]
        _log(f"[{self.threads} thr] numpy float32 matmul {n}^3 ...")
        rates = [sgemm.matmul_rate(n, spec["sgemm_reps"])]
        _log(f"[{self.threads} thr] SGEMM {rates[0]['gflops_median']:.1f} GFLOP/s (median)")
        cfgs = C.resolve_configs(spec["configs"])
        errors: List[str] = []
        for cfg in cfgs:
            for cell in spec["cells"]:
                for mode in spec["modes"]:
                    if mode == "step":
                        continue
                    self._guarded(errors, lambda: self._sequence_case(cfg, cell, mode),
                                  f"{cfg.name} {cell} {mode}")
        if "step" in spec["modes"]:
            for cell in spec["cells"]:
                self._guarded(errors, lambda: self._step_case(cell), f"step {cell}")
        if spec["sgemm_again"]:
            # Measured again at the end: on a shared machine one reading may fall in a noisy
            # minute; the report uses the better of the two medians as the machine's ceiling.
            rates.append(sgemm.matmul_rate(n, spec["sgemm_reps"]))
        info = rnnkit.build_info()
        # The register-only FMA peak of one core at the level in use (benchmarks/fma_peak.py),
        # times the threads: the ceiling the report's %FMA reads GFLOP/s against.
        per_core = fma_peak_gflops(info["simd"], seconds=0.1, rounds=3)
        return {"threads": self.threads, "build_info": info,
                "rnnkit_file": rnnkit.__file__,
                "cpu_model_proc": _cpu_model_proc(),
                "versions": {"python": platform.python_version(), "numpy": np.__version__,
                             "rnnkit": info.get("version"),
                             "torch": self.torch.version() if self.torch else None,
                             "onnxruntime": self.ort.version() if self.ort else None},
                "peer_notes": self.peer_notes, "blas": sgemm.blas_info(),
                "sgemm": {"runs": rates,
                          "gflops": max(r["gflops_median"] for r in rates)},
                "fma_peak": {"gflops_per_core": per_core, "gflops": per_core * self.threads},
                "loadavg": {"before": load_before, "after": os.getloadavg(),
                            "cores": os.cpu_count()},
                "cases": self.cases, "errors": errors}

    def _guarded(self, errors: List[str], fn: Callable[[], dict], label: str) -> None:
        """Run one grid cell; a crash (not a failed check) is recorded and the grid goes on."""
        try:
            self.cases.append(fn())
        except CheckFailed:
            raise
        except Exception:  # noqa: BLE001 - report and continue with the next grid cell
            msg = f"{label} ({self.threads} thr): {traceback.format_exc()}"
            _log("ERROR " + msg)
            errors.append(msg)


def main(argv: List[str]) -> int:
    spec_path, out_path = argv
    with open(spec_path) as f:
        spec = json.load(f)
    worker = Worker(spec)
    try:
        result = worker.run()
        status = 0
    except CheckFailed as e:
        result = {"threads": spec["threads"], "check_failed": str(e), "cases": worker.cases}
        status = 3
    with open(out_path, "w") as f:
        json.dump(result, f)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
