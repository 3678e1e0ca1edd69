"""Turning raw results into tables, target verdicts and a plot.

Speed-up is always peer time / rnnkit time (medians, same run, same thread count), so > 1
means rnnkit is faster.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

from benchmarks import configs as C

# For each mode: the torch column's contestant, and the "other peer" column's.
PEER_COLUMNS: Dict[str, Tuple[str, str]] = {
    "forward": ("torch", "ort"),
    "train": ("torch", ""),
    "varlen": ("torch_packed", "torch_padded"),
    "step": ("torch", "numpy_matvec"),
}
OTHER_LABEL = {"ort": "ort", "torch_padded": "torch padded", "numpy_matvec": "numpy W@v"}


def median_s(case: dict, name: str) -> Optional[float]:
    t = case.get("timings", {}).get(name)
    return None if t is None else t["median_s"]


def speedup(case: dict, peer: str) -> Optional[float]:
    mine, theirs = median_s(case, "rnnkit"), median_s(case, peer)
    if mine is None or theirs is None or mine <= 0:
        return None
    return theirs / mine


def gflops(case: dict) -> Optional[float]:
    t = median_s(case, "rnnkit")
    return None if not t else case["flops"] / t / 1e9


# ---------------------------------------------------------------- targets
Verdict = Tuple[str, Optional[bool]]  # (text, met: True/False, None = not measurable)


def case_targets(case: dict, sgemm_gflops: float) -> List[Verdict]:
    """The issue-3 targets that apply to one row, each with its verdict."""
    cfg, cell, mode = case["config"], case["cell"], case["mode"]
    out: List[Verdict] = []

    def ratio_target(label: str, value: Optional[float], goal: float) -> None:
        if value is None:
            out.append((f"{label}>={goal:g}x: n/a", None))
        else:
            out.append((f"{label}>={goal:g}x: {'met' if value >= goal else 'MISSED'}",
                        value >= goal))

    if mode == "train" and cell in C.TRAIN_TARGETS.get(cfg, {}):
        ratio_target("", speedup(case, "torch"), C.TRAIN_TARGETS[cfg][cell])
        if cfg == "large":
            g = gflops(case)
            frac = None if g is None or not sgemm_gflops else g / sgemm_gflops
            goal = C.LARGE_TRAIN_SGEMM_FRACTION
            out.append((f">={goal:.0%} SGEMM: " + ("n/a" if frac is None else
                                                     ("met" if frac >= goal else "MISSED")),
                        None if frac is None else frac >= goal))
    elif mode == "forward" and cfg in C.FORWARD_TARGETS:
        ups = [s for s in (speedup(case, "torch"), speedup(case, "ort")) if s is not None]
        ratio_target("vs best ", min(ups) if ups else None, C.FORWARD_TARGETS[cfg])
    elif mode == "varlen" and (cfg, cell) == C.VARLEN_TARGET[:2]:
        ratio_target("packed ", speedup(case, "torch_packed"), C.VARLEN_TARGET[2])
    elif mode == "step" and cell in C.STEP_TARGET_CELLS:
        mv = speedup(case, "numpy_matvec")
        goal = C.STEP_MATVEC_MAX_RATIO
        out.append((f"<={goal:g}x W@v: " + ("n/a" if mv is None else
                                            ("met" if 1.0 / mv <= goal else "MISSED")),
                    None if mv is None else 1.0 / mv <= goal))
        ratio_target("", speedup(case, "torch"), C.STEP_TORCH_TARGET)
    return out


def scaling_targets(workers: Dict[int, dict]) -> List[dict]:
    """2 threads against 1 on the large train step, per cell (needs both thread counts)."""
    if 1 not in workers or 2 not in workers:
        return []
    rows = []
    by_key = {t: {(c["config"], c["cell"], c["mode"]): c for c in w.get("cases", [])}
              for t, w in workers.items()}
    for cell in C.CELLS:
        one, two = by_key[1].get(("large", cell, "train")), by_key[2].get(("large", cell, "train"))
        if not one or not two:
            continue
        t1, t2 = median_s(one, "rnnkit"), median_s(two, "rnnkit")
        ratio = t1 / t2 if t1 and t2 else None
        tr1, tr2 = median_s(one, "torch"), median_s(two, "torch")
        rows.append({"what": f"large {cell} train, 2 thr vs 1 thr", "goal": C.THREAD_SCALING_TARGET,
                     "achieved": ratio, "torch": tr1 / tr2 if tr1 and tr2 else None,
                     "met": None if ratio is None else ratio >= C.THREAD_SCALING_TARGET})
    return rows


def memory_targets(memory: Sequence[dict]) -> List[dict]:
    """Peak train-step memory, rnnkit <= torch, per (config, cell) measured for both."""
    got: Dict[Tuple[str, str], Dict[str, dict]] = {}
    for m in memory:
        got.setdefault((m["config"], m["cell"]), {})[m["impl"]] = m
    rows = []
    for (cfg, cell), pair in got.items():
        rk, th = pair.get("rnnkit"), pair.get("torch")
        ok = rk and "delta_kb" in rk and th and "delta_kb" in th
        rows.append({"config": cfg, "cell": cell,
                     "rnnkit_mib": rk["delta_kb"] / 1024 if rk and "delta_kb" in rk else None,
                     "torch_mib": th["delta_kb"] / 1024 if th and "delta_kb" in th else None,
                     "met": (rk["delta_kb"] <= th["delta_kb"]) if ok else None})
    return rows


# ---------------------------------------------------------------- text
def _ms(v: Optional[float]) -> str:
    if v is None:
        return "-"
    ms = v * 1e3
    return f"{ms:.4f}" if ms < 0.1 else f"{ms:.3f}" if ms < 10 else f"{ms:.1f}"


def _x(v: Optional[float]) -> str:
    return "-" if v is None else f"{v:.2f}x"


def header_lines(worker: dict) -> List[str]:
    info = worker.get("build_info", {})
    v = worker.get("versions", {})
    notes = worker.get("peer_notes", {})
    peers = []
    for key, label in (("torch", "torch"), ("onnxruntime", "onnxruntime")):
        short = "ort" if key == "onnxruntime" else key
        peers.append(f"{label} {v[key]}" if v.get(key) else f"{label}: {notes.get(short, 'absent')}")
    return [
        f"CPU: {info.get('cpu_model', '?')} (rnnkit)  |  /proc/cpuinfo: {worker.get('cpu_model_proc')}",
        f"rnnkit {v.get('rnnkit')} from {worker.get('rnnkit_file')}",
        f"SIMD in use: {info.get('simd')}  (compiled: {info.get('simd_compiled')}, CPU: "
        f"{info.get('simd_cpu')}, available: {info.get('simd_available')}); compiler "
        f"{info.get('compiler')}, OpenMP {info.get('openmp')}",
        f"peers: {', '.join(peers)}; numpy {v.get('numpy')}, python {v.get('python')}",
    ]


def table_lines(worker: dict) -> List[str]:
    """The per-thread-count table."""
    threads = worker["threads"]
    rate = worker["sgemm"]["gflops"]
    runs = worker["sgemm"]["runs"]
    peak = worker.get("fma_peak", {}).get("gflops")   # absent in results of older runs
    lines = [f"=== {threads} thread{'s' if threads > 1 else ''} === numpy float32 matmul "
             f"{runs[0]['n']}^3: {rate:.1f} GFLOP/s (best median of {len(runs)} readings: "
             + ", ".join(f"{r['gflops_median']:.1f}" for r in runs) + ")"]
    if peak:
        lines.append(f"fp32 FMA peak (register-only loop, {threads} core"
                     f"{'s' if threads > 1 else ''}): {peak:.1f} GFLOP/s")
    load = worker.get("loadavg")
    if load:
        busy = load["before"][0] > 0.5 or load["after"][0] > threads + 0.5
        lines.append(f"load average (1 min) before/after: {load['before'][0]:.2f} / "
                     f"{load['after'][0]:.2f} on {load['cores']} cores"
                     + ("  <- other work was running: expect noise, worst at more threads"
                        if busy else ""))
    cols = (f"{'config':8s} {'cell':4s} {'mode':7s} {'rnnkit ms':>10s} {'iqr':>4s} "
            f"{'torch ms':>10s} {'x torch':>8s}  {'other':12s} {'ms':>9s} {'x other':>8s} "
            f"{'GFLOP/s':>8s} {'%SGEMM':>7s} {'%FMA':>5s} {'check':>7s}  target")
    lines += [cols, "-" * len(cols)]
    for case in worker.get("cases", []):
        torch_name, other = PEER_COLUMNS[case["mode"]]
        rk = case["timings"]["rnnkit"]
        iqr = (rk["q3_s"] - rk["q1_s"]) / rk["median_s"] if rk["median_s"] else 0.0
        g = gflops(case)
        chk = case.get("check", {})
        chk_text = "-" if chk.get("max_rel") is None else (
            f"{chk['max_rel']:.0e}" if chk["ok"] else "WRONG")
        targets = case_targets(case, rate)
        lines.append(
            f"{case['config']:8s} {case['cell']:4s} {case['mode']:7s} "
            f"{_ms(rk['median_s']):>10s} {iqr:4.0%} "
            f"{_ms(median_s(case, torch_name)):>10s} {_x(speedup(case, torch_name)):>8s}  "
            f"{OTHER_LABEL.get(other, ''):12s} {_ms(median_s(case, other) if other else None):>9s} "
            f"{_x(speedup(case, other) if other else None):>8s} "
            f"{'-' if g is None else f'{g:.1f}':>8s} "
            f"{'-' if g is None else f'{g / rate:.0%}':>7s} "
            f"{'-' if g is None or not peak else f'{g / peak:.0%}':>5s} {chk_text:>7s}  "
            + ("; ".join(t for t, _ in targets) if targets else ""))
    for err in worker.get("errors", []):
        lines.append("ERROR " + err.strip().splitlines()[0])
    return lines


LEGEND = """\
columns: medians over alternating repeats; iqr = interquartile range / median of rnnkit's samples.
  torch = torch.nn.LSTM/GRU/RNN (forward under no_grad; train = forward + backward of y.sum());
          varlen rows: torch's packed path (pack_padded_sequence, enforce_sorted=False);
          step rows: torch.nn.LSTMCell/GRUCell/RNNCell, B=1 I=64 H=256, under no_grad.
  other = forward: ONNX Runtime on the exported torch layer; varlen: torch on the padded batch
          (lengths ignored); step: numpy (G*H, I+H) float32 mat-vec over the same weights.
  x torch / x other = peer ms / rnnkit ms (> 1: rnnkit faster).  GFLOP/s = rnnkit's, forward
  2*B*T*G*H*(I+H), train 3x that, varlen counting valid steps only; %SGEMM = of numpy's rate;
  %FMA = of the measured register-only fp32 FMA peak of the threads used (benchmarks.fma_peak).
  check = max |rnnkit - torch| / max |torch| over outputs (and gradients), before timing."""


def summary_lines(workers: Dict[int, dict], memory: Sequence[dict]) -> List[str]:
    """Every issue-3 target with what was achieved, misses included."""
    lines = ["=== issue-3 targets ==="]
    met = missed = 0
    for threads, w in sorted(workers.items()):
        rate = w.get("sgemm", {}).get("gflops", 0.0)
        for case in w.get("cases", []):
            for text, ok in case_targets(case, rate):
                if ok is None:
                    continue
                met, missed = met + ok, missed + (not ok)
                ach = []
                for peer in ("torch", "ort", "torch_packed", "numpy_matvec"):
                    s = speedup(case, peer)
                    if s is not None:
                        ach.append(f"{peer} {s:.2f}x")
                ops_t1 = median_s(case, "rnnkit_ops_T1")
                if ops_t1 is not None:
                    ach.append(f"rnnkit.nn cell {_ms(median_s(case, 'rnnkit'))} ms vs "
                               f"ops with T=1 {_ms(ops_t1)} ms")
                g = gflops(case)
                if case["config"] == "large" and g is not None and rate:
                    ach.append(f"{g / rate:.0%} SGEMM")
                lines.append(f"  [{threads} thr] {case['config']} {case['cell']} {case['mode']}: "
                             f"{text}  ({', '.join(ach)})")
    for row in scaling_targets(workers):
        ok = row["met"]
        if ok is not None:
            met, missed = met + ok, missed + (not ok)
        torch_s = "" if row["torch"] is None else f" (torch's own: {row['torch']:.2f}x)"
        lines.append(f"  {row['what']}: >={row['goal']:g}x: "
                     + ("n/a" if ok is None else f"{row['achieved']:.2f}x "
                        + ("met" if ok else "MISSED")) + torch_s)
    for row in memory_targets(memory):
        ok = row["met"]
        if ok is not None:
            met, missed = met + ok, missed + (not ok)
        rk = "n/a" if row["rnnkit_mib"] is None else f"+{row['rnnkit_mib']:.1f} MiB"
        th = "n/a" if row["torch_mib"] is None else f"+{row['torch_mib']:.1f} MiB"
        lines.append(f"  peak train memory {row['config']} {row['cell']}: rnnkit {rk}, "
                     f"torch {th}: <= torch: "
                     + ("n/a" if ok is None else "met" if ok else "MISSED"))
    lines.append(f"  {met} met, {missed} MISSED")
    return lines


# ---------------------------------------------------------------- plot
def plot(workers: Dict[int, dict], path: str) -> str:
    """Horizontal bars of speed-up vs each peer, one panel per thread count; returns a note."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return (f"--plot {path}: matplotlib is not installed (pip install matplotlib, or "
                "rnnkit[bench]); no plot written")
    panels = sorted(workers.items())
    n_rows = max(len(w.get("cases", [])) for _, w in panels) if panels else 0
    fig, axes = plt.subplots(1, len(panels), figsize=(7 * len(panels), 0.32 * n_rows + 1.5),
                             squeeze=False, sharey=True)
    colours = {"torch": "tab:red", "ort": "tab:green", "torch_packed": "tab:purple",
               "torch_padded": "tab:orange", "numpy_matvec": "tab:gray"}
    for ax, (threads, w) in zip(axes[0], panels):
        cases = w.get("cases", [])
        labels = [f"{c['config']} {c['cell']} {c['mode']}" for c in cases]
        for peer, colour in colours.items():
            ys, xs = [], []
            for k, c in enumerate(cases):
                s = speedup(c, peer)
                if s is not None:
                    ys.append(k), xs.append(s)
            offset = list(colours).index(peer) * 0.16 - 0.32
            ax.barh([y + offset for y in ys], xs, height=0.16, color=colour, label=peer)
        ax.axvline(1.0, color="black", linewidth=0.8)
        ax.set_xscale("log")
        ax.set_yticks(range(len(labels)))
        ax.set_yticklabels(labels, fontsize=7)
        ax.invert_yaxis()
        ax.set_title(f"{threads} thread(s): speed-up = peer time / rnnkit time")
        ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return f"plot written to {path}"
