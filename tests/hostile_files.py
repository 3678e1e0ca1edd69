"""Hostile files for rnnkit.load: the fixed set of tests/test_io_hostile.py and the random
mutations of benchmarks/fuzz_io.py, plus the runner both use to load them in a subprocess.

Files are built byte by byte (a small zip writer of our own, hand-made ``.npy`` headers), so
that they can lie in every way a real file can: declared sizes, shapes, dtypes, counts,
compression, overlapping entries, JSON that no json.dumps would write. Nothing here ever
unpickles or np.loads the files.

Runner: ``python hostile_files.py CASES.json RESULTS.json`` loads each ``{"name", "path"}``
of CASES with rnnkit.load and writes, per case, the exception type and message (or
``"loaded"``), the seconds taken and the peak-RSS growth it caused, plus the whole run's
peak-RSS growth over the baseline after import.
"""
from __future__ import annotations

import json
import os
import pickle
import struct
import sys
import zlib
from io import BytesIO
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np

# ------------------------------------------------------------------------ byte builders


def npy(arr: np.ndarray) -> bytes:
    """``arr`` as .npy bytes (object arrays are pickled, as numpy does: for hostile files)."""
    bio = BytesIO()
    np.lib.format.write_array(bio, arr, allow_pickle=True)
    return bio.getvalue()


def npy_raw(header: str, data: bytes, version: Tuple[int, int] = (1, 0)) -> bytes:
    """A .npy with a hand-written header dict text (padded as numpy pads it)."""
    text = header.encode("latin1")
    fixed = 10 if version == (1, 0) else 12
    pad = (-(fixed + len(text) + 1)) % 64
    text = text + b" " * pad + b"\n"
    size = struct.pack("<H", len(text)) if version == (1, 0) else struct.pack("<I", len(text))
    return b"\x93NUMPY" + bytes(version) + size + text + data


def meta_npy(meta: Any) -> bytes:
    """The __meta__ member: JSON text (or raw bytes) as a uint8 .npy."""
    blob = meta if isinstance(meta, bytes) else json.dumps(meta).encode()
    return npy(np.frombuffer(blob, np.uint8))


class Entry:
    """One zip member. ``data`` is what the member holds (compressed bytes when
    ``method=8`` and ``raw`` is set); the other fields override what the directory says."""

    def __init__(self, name: str, data: bytes, method: int = 0, raw: bool = False,
                 file_size: Optional[int] = None, crc: Optional[int] = None,
                 share_with: Optional[int] = None) -> None:
        self.name, self.data, self.method, self.raw = name, data, method, raw
        self.file_size, self.crc, self.share_with = file_size, crc, share_with


def make_zip(entries: List[Entry]) -> bytes:
    """A zip of ``entries`` (stored or deflated; ``share_with=i`` points an entry's directory
    record at entry i's bytes: overlapping entries)."""
    out = bytearray()
    central = bytearray()
    offsets: List[Tuple[int, int, int, int, int]] = []
    for e in entries:
        name = e.name.encode("utf-8")
        if e.share_with is not None:
            offsets.append(offsets[e.share_with])
            off, comp_len, size, crc, method = offsets[-1]
        else:
            if e.method == 8 and not e.raw:
                c = zlib.compressobj(6, zlib.DEFLATED, -15)
                comp = c.compress(e.data) + c.flush()
            else:
                comp = e.data
            size = e.file_size if e.file_size is not None else len(e.data)
            crc = e.crc if e.crc is not None else (zlib.crc32(e.data) if not e.raw else 0)
            method = e.method
            off = len(out)
            out += struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0, method, 0, 0x21,
                               crc & 0xFFFFFFFF, len(comp), min(size, 0xFFFFFFFF),
                               len(name), 0)
            out += name + comp
            comp_len = len(comp)
            offsets.append((off, comp_len, size, crc, method))
        central += struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 20, 20, 0, method, 0, 0x21,
                               crc & 0xFFFFFFFF, comp_len, min(size, 0xFFFFFFFF), len(name),
                               0, 0, 0, 0, 0, off)
        central += name
    cd_off = len(out)
    out += central
    n = len(entries)
    out += struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, min(n, 0xFFFF), min(n, 0xFFFF),
                       len(central), cd_off, 0)
    return bytes(out)


def bomb_stream(prefix: bytes, zero_mib: int) -> bytes:
    """Raw deflate of ``prefix`` + ``zero_mib`` MiB of zeros, built without compressing them:
    after a full flush the compressor forgets its history, so every further MiB of zeros
    compresses to the same bytes, which are simply repeated."""
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    mib = bytes(1 << 20)
    head = c.compress(prefix + mib) + c.flush(zlib.Z_FULL_FLUSH)
    block = c.compress(mib) + c.flush(zlib.Z_FULL_FLUSH)
    return head + block * (zero_mib - 1) + c.flush()


# ------------------------------------------------------------------------ valid bases


def read_file(path: str) -> Tuple[Dict[str, Any], Dict[str, bytes]]:
    """(metadata, {member name: .npy bytes}) of a valid file, read without np.load."""
    import zipfile
    with zipfile.ZipFile(path) as z:
        members = {n: z.read(n) for n in z.namelist()}
    blob = members.pop("__meta__.npy")
    arr = np.lib.format.read_array(BytesIO(blob), allow_pickle=False)
    return json.loads(arr.tobytes()), members


def build(meta: Any, members: Dict[str, bytes], first: bool = True) -> bytes:
    """A stored zip of ``__meta__`` (JSON or raw bytes) and ``members`` (name -> .npy)."""
    entries = [Entry(n, d) for n, d in members.items()]
    m = Entry("__meta__.npy", meta_npy(meta))
    return make_zip([m] + entries if first else entries + [m])


def base_files(directory: str) -> Dict[str, str]:
    """Valid model and trainer files written by rnnkit.save: {"model": path, ...}."""
    import warnings

    import rnnkit
    from rnnkit import losses, nn, optim
    from rnnkit.train import Trainer
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = nn.Sequential(nn.Embedding(11, 4, seed=0),
                              nn.LSTM(4, 5, num_layers=2, bidirectional=True,
                                      batch_first=True, seed=1),
                              nn.Last(batch_first=True), nn.Dropout(0.1, seed=2),
                              nn.Linear(10, 3, seed=3))
    paths = {"model": os.path.join(directory, "base_model.rnnkit"),
             "trainer": os.path.join(directory, "base_trainer.rnnkit"),
             "linear": os.path.join(directory, "base_linear.rnnkit")}
    rnnkit.save(model, paths["model"], metadata={"vocab": list("abcdefghijk")})
    rnnkit.save(nn.Linear(3, 2, seed=4), paths["linear"])
    small = nn.Sequential(nn.GRU(3, 4, batch_first=True, seed=5), nn.Last(batch_first=True),
                          nn.Linear(4, 2, seed=6))
    tr = Trainer(small, losses.MSELoss(), optim.Adam(small.parameters(), lr=0.01))
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((6, 5, 3)), rng.standard_normal((6, 2))
    tr.fit(x.astype(np.float32), y.astype(np.float32), epochs=1, batch_size=3, verbose=0)
    rnnkit.save(tr, paths["trainer"])
    return paths


# ------------------------------------------------------------------------ the fixed set


def _set(obj: Any, path: Tuple[Any, ...], value: Any) -> Any:
    """A deep copy of JSON ``obj`` with ``obj[path...] = value``."""
    obj = json.loads(json.dumps(obj))
    node = obj
    for k in path[:-1]:
        node = node[k]
    node[path[-1]] = value
    return obj


def fixed_cases(directory: str) -> List[Tuple[str, str]]:
    """Write the fixed hostile set into ``directory``: [(case name, path)]. Every one must
    make rnnkit.load raise ValueError naming the path ("maybe-*" cases may also load:
    a flipped bit in a field nobody checks, such as a timestamp, is harmless)."""
    bases = base_files(directory)
    with open(bases["model"], "rb") as f:
        model_bytes = f.read()
    mmeta, mmembers = read_file(bases["model"])
    lmeta, lmembers = read_file(bases["linear"])
    tmeta, tmembers = read_file(bases["trainer"])
    cases: Dict[str, bytes] = {}
    n = len(model_bytes)

    # -- junk, truncations, bit flips
    cases["empty"] = b""
    cases["text"] = b"hello, this is not an archive\n" * 10
    cases["junk-pk"] = b"PK\x03\x04" + bytes(range(256)) * 4
    cases["npy-alone"] = npy(np.zeros(3))
    for cut in (1, 4, 30, 100, n // 3, n // 2, n - 100, n - 22, n - 1):
        cases[f"truncated-{cut}"] = model_bytes[:cut]
    rng = np.random.default_rng(1234)
    for i, off in enumerate(sorted(rng.choice(n, 24, replace=False))):
        b = bytearray(model_bytes)
        b[off] ^= 1 << int(rng.integers(8))
        cases[f"maybe-bitflip-{i}-at-{off}"] = bytes(b)

    # -- pickles and torch files
    cases["pickle"] = pickle.dumps({"weight": [1.0, 2.0]}, protocol=2)
    cases["pickle-protocol0"] = pickle.dumps({"a": 1}, protocol=0)
    # torch.save's legacy format starts with its pickled magic number
    cases["torch-legacy"] = pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2) + b"\x80\x02}q."
    cases["torch-zip"] = make_zip([
        Entry("archive/data.pkl", pickle.dumps({"w": 1}, protocol=2)),
        Entry("archive/byteorder", b"little"), Entry("archive/data/0", bytes(16)),
        Entry("archive/version", b"3\n")])
    evil = np.empty(1, dtype=object)
    evil[0] = {"x": 1}
    cases["object-array-param"] = build(lmeta, dict(lmembers, **{"model/weight.npy": npy(evil)}))
    cases["object-array-meta"] = make_zip([Entry("__meta__.npy", npy(evil))] +
                                          [Entry(k, v) for k, v in lmembers.items()])

    # -- zip bombs and lying sizes
    w_header = npy_raw("{'descr': '<f4', 'fortran_order': False, 'shape': (104857600,), }", b"")
    cases["zip-bomb-param"] = make_zip(
        [Entry("__meta__.npy", meta_npy(lmeta)),
         Entry("model/weight.npy", bomb_stream(w_header, 400), method=8, raw=True,
               file_size=len(w_header) + (400 << 20)),
         Entry("model/bias.npy", lmembers["model/bias.npy"])])
    m_header = npy_raw("{'descr': '|u1', 'fortran_order': False, 'shape': (419430400,), }", b"")
    cases["zip-bomb-meta"] = make_zip(
        [Entry("__meta__.npy", bomb_stream(m_header, 400), method=8, raw=True,
               file_size=len(m_header) + (400 << 20))])
    cases["zip-bomb-unexpected-member"] = make_zip(
        [Entry("__meta__.npy", meta_npy(lmeta))] +
        [Entry(k, v) for k, v in lmembers.items()] +
        [Entry("zz_extra.npy", bomb_stream(w_header, 400), method=8, raw=True,
               file_size=len(w_header) + (400 << 20))])
    big = npy(np.zeros(1 << 18, np.float32))   # 1 MiB, stored, shared by 600 entries
    cases["overlapping-entries"] = make_zip(
        [Entry("__meta__.npy", meta_npy(lmeta)), Entry("model/weight.npy", big)] +
        [Entry(f"model/w{i}.npy", b"", share_with=1) for i in range(600)])
    cases["declared-size-lie"] = make_zip(
        [Entry("__meta__.npy", meta_npy(lmeta)),
         Entry("model/weight.npy", lmembers["model/weight.npy"], file_size=0xFFFFFFF0),
         Entry("model/bias.npy", lmembers["model/bias.npy"])])
    cases["deflated-but-valid"] = make_zip(
        [Entry("__meta__.npy", meta_npy(lmeta), method=8)] +
        [Entry(k, v, method=8) for k, v in lmembers.items()])
    cases["bad-crc"] = make_zip(
        [Entry("__meta__.npy", meta_npy(lmeta)),
         Entry("model/weight.npy", lmembers["model/weight.npy"], crc=12345),
         Entry("model/bias.npy", lmembers["model/bias.npy"])])

    # -- .npy headers
    def with_weight(data: bytes) -> bytes:
        return build(lmeta, dict(lmembers, **{"model/weight.npy": data}))

    f4 = np.zeros((2, 3), np.float32).tobytes()
    hdr = "{'descr': '<f4', 'fortran_order': False, 'shape': %s, }"
    cases["npy-huge-shape"] = with_weight(npy_raw(hdr % "(1000000000000,)", f4))
    cases["npy-huge-2d-shape"] = with_weight(npy_raw(hdr % "(10**9, 10**9)", f4))
    cases["npy-negative-shape"] = with_weight(npy_raw(hdr % "(-2, -3)", f4))
    cases["npy-str-shape"] = with_weight(npy_raw(hdr % "('a', 3)", f4))
    cases["npy-float-shape"] = with_weight(npy_raw(hdr % "(2.0, 3)", f4))
    cases["npy-wrong-shape"] = with_weight(npy_raw(hdr % "(3, 2)", f4))
    cases["npy-short-data"] = with_weight(npy_raw(hdr % "(2, 3)", f4[:-4]))
    cases["npy-long-data"] = with_weight(npy_raw(hdr % "(2, 3)", f4 + f4))
    cases["npy-not-a-dict"] = with_weight(npy_raw("[1, 2, 3]", f4))
    cases["npy-deep-header"] = with_weight(npy_raw("(" * 3000 + ")" * 3000, f4))
    cases["npy-huge-header"] = with_weight(npy_raw("{'descr': '<f4', 'x': '" + "a" * 70000
                                                   + "'}", f4, version=(2, 0)))
    cases["npy-version-3"] = with_weight(npy_raw(hdr % "(2, 3)", f4, version=(3, 0)))
    cases["npy-version-9"] = with_weight(b"\x93NUMPY\x09\x09" + f4)
    cases["npy-bad-magic"] = with_weight(b"\x93NUMPX\x01\x00" + f4)
    cases["npy-header-only"] = with_weight(npy_raw(hdr % "(2, 3)", b"")[:12])
    cases["npy-extra-keys"] = with_weight(npy_raw(
        "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), 'evil': 1}", f4))
    for name, descr in [("object", "|O"), ("unicode", "<U4"), ("void", "|V4"),
                        ("struct", "[('a', '<f4')]"), ("datetime", "<M8[s]"),
                        ("complex", "<c8"), ("big-endian", ">f4"), ("int", "<i4"),
                        ("half", "<f2"), ("subarray", "('<f4', (2,))"), ("nonsense", "'zz'")]:
        cases[f"dtype-{name}"] = with_weight(npy_raw(
            "{'descr': %s, 'fortran_order': False, 'shape': (2, 3), }"
            % (descr if descr[0] in "[('" else repr(descr)), f4))

    # -- the metadata member
    def with_meta(meta: Any, members: Dict[str, bytes] = lmembers) -> bytes:
        return build(meta, members)

    cases["meta-float64"] = make_zip([Entry("__meta__.npy", npy(np.zeros(4)))] +
                                     [Entry(k, v) for k, v in lmembers.items()])
    cases["meta-2d"] = make_zip([Entry("__meta__.npy", npy(np.zeros((2, 2), np.uint8)))])
    cases["meta-too-big"] = with_meta(json.dumps(lmeta).encode() + b" " * (5 << 20))
    cases["meta-deep-list"] = with_meta(b"[" * 100_000 + b"]" * 100_000)
    cases["meta-deep-dict"] = with_meta(b'{"a":' * 50_000 + b"1" + b"}" * 50_000)
    cases["meta-deep-65"] = with_meta(_set(lmeta, ("x",), json.loads("[" * 70 + "]" * 70)))
    cases["meta-huge-int-text"] = with_meta(b'{"format": "rnnkit", "x": ' + b"9" * 1_000_000
                                            + b"}")
    cases["meta-many-containers"] = with_meta(b"[" + b"[]," * 1_300_000 + b"[]]")
    cases["meta-nan"] = with_meta(json.dumps(lmeta).replace('"out_features": 2',
                                                            '"out_features": NaN').encode())
    cases["meta-infinity-size"] = with_meta(json.dumps(lmeta).replace(
        '"out_features": 2', '"out_features": Infinity').encode())
    cases["meta-1e999"] = with_meta(json.dumps(lmeta).replace(
        '"out_features": 2', '"out_features": 1e999').encode())
    cases["meta-duplicate-keys"] = with_meta(json.dumps(lmeta).replace(
        '"kind": "model"', '"kind": "model", "kind": "optimizer"').encode())
    cases["meta-bad-utf8"] = with_meta(b"\xff\xfe{}")
    cases["meta-not-json"] = with_meta(b"{not json")
    cases["meta-list"] = with_meta([1, 2, 3])
    cases["meta-string"] = with_meta("a string")
    cases["meta-empty"] = with_meta(b"")
    for key, value in [("format", None), ("format", "keras"), ("format_version", 2),
                       ("format_version", True), ("format_version", "1"),
                       ("format_version", 0), ("kind", "pickle"), ("kind", ["model"]),
                       ("model", []), ("model", None), ("metadata", [1])]:
        cases[f"meta-{key}-{json.dumps(value)}"] = with_meta(_set(lmeta, (key,), value))
    arch = ("model", "architecture")
    for label, path, value in [
            ("arch-string", arch, "x"), ("arch-list", arch, []),
            ("config-list", arch + ("config",), []),
            ("class-os-system", arch + ("class",), "os.system"),
            ("class-module", arch + ("class",), "Module"),
            ("class-int", arch + ("class",), 3),
            ("extra-arg", arch + ("config", "seed"), 1),
            ("in-zero", arch + ("config", "in_features"), 0),
            ("in-negative", arch + ("config", "in_features"), -3),
            ("in-float", arch + ("config", "in_features"), 3.0),
            ("in-bool", arch + ("config", "in_features"), True),
            ("in-huge", arch + ("config", "in_features"), 10 ** 18),
            ("in-70-digits", arch + ("config", "in_features"), 10 ** 69),
            ("bias-string", arch + ("config", "bias"), "yes"),
            ("dtype-float16", arch + ("config", "dtype"), "float16"),
            ("dtype-object", arch + ("config", "dtype"), "object"),
            ("rng-list", ("model", "rng"), []),
            ("arch-extra-entry", arch + ("layers",), [])]:
        cases[f"meta-{label}"] = with_meta(_set(lmeta, path, value))
    # the 3.5 KB file of the audit: num_layers=10**9 in an otherwise valid model
    marc = ("model", "architecture", "layers", 1, "config")
    for label, key, value in [("num-layers-1e9", "num_layers", 10 ** 9),
                              ("hidden-1e9", "hidden_size", 10 ** 9),
                              ("hidden-7", "hidden_size", 7),
                              ("input-1e9", "input_size", 10 ** 9),
                              ("bidirectional-off", "bidirectional", False),
                              ("dropout-2", "dropout", 2.0),
                              ("dropout-string", "dropout", "0.1")]:
        cases[f"arch-{label}"] = build(_set(mmeta, marc + (key,), value), mmembers)
    layers = ("model", "architecture", "layers")
    cases["arch-20000-layers"] = build(
        _set(mmeta, layers, [{"class": "Last", "config": {}}] * 20000), {})
    cases["arch-deep-sequential"] = build(
        _set(mmeta, ("model", "architecture"),
             json.loads('{"class": "Sequential", "config": {}, "layers": [' * 40 + '{"class": '
                        '"Last", "config": {}}' + "]}" * 40)), {})
    cases["arch-layers-dict"] = build(_set(mmeta, layers, {"0": 1}), mmembers)
    cases["arch-layer-int"] = build(_set(mmeta, layers + (0,), 5), mmembers)
    cases["arch-missing-param"] = build(mmeta, {k: v for k, v in mmembers.items()
                                                if not k.endswith("bias_hh_l1_reverse.npy")})
    cases["arch-param-float64"] = build(mmeta, dict(mmembers, **{
        "model/4.weight.npy": npy(np.zeros((3, 10), np.float64))}))
    cases["arch-param-int64"] = build(mmeta, dict(mmembers, **{
        "model/4.weight.npy": npy(np.zeros((3, 10), np.int64))}))
    cases["arch-param-transposed"] = build(mmeta, dict(mmembers, **{
        "model/4.weight.npy": npy(np.zeros((10, 3), np.float32))}))
    cases["arch-rng-garbage"] = build(_set(mmeta, ("model", "rng", "3"),
                                           {"bit_generator": "PCG64", "state": 5}), mmembers)
    cases["arch-rng-huge-int"] = build(_set(mmeta, ("model", "rng", "3", "state", "state"),
                                            -1), mmembers)

    # -- members the metadata does not describe
    cases["member-extra-npy"] = build(lmeta, dict(lmembers, **{"evil.npy": npy(np.zeros(3))}))
    cases["member-extra-param"] = build(lmeta, dict(lmembers, **{
        "model/extra.npy": npy(np.zeros(3, np.float32))}))
    cases["member-not-npy"] = build(lmeta, dict(lmembers, **{"readme.txt": b"hi"}))
    cases["member-path-traversal"] = build(lmeta, dict(lmembers, **{"../../x.npy": b"x"}))
    cases["member-duplicate"] = make_zip(
        [Entry("__meta__.npy", meta_npy(lmeta))] + [Entry(k, v) for k, v in lmembers.items()]
        + [Entry("model/weight.npy", lmembers["model/weight.npy"])])
    cases["member-missing-meta"] = make_zip([Entry(k, v) for k, v in lmembers.items()])
    cases["member-many"] = make_zip([Entry("__meta__.npy", meta_npy(lmeta))] +
                                    [Entry(f"m{i}.npy", b"") for i in range(120_000)])
    # harmless: an unknown top-level entry (a later version's) is ignored; must be cheap
    cases["maybe-unknown-entry-200k-ints"] = with_meta(_set(lmeta, ("x",), [0] * 200_000))

    # -- trainer and optimiser state
    opt_state = ("optimizer", "state", "state", "0")
    for label, path, value in [
            ("step-negative", opt_state + ("step",), -1),
            ("step-huge", opt_state + ("step",), 2 ** 70),
            ("step-float", opt_state + ("step",), 1.5),
            ("step-bool", opt_state + ("step",), True),
            ("step-string", opt_state + ("step",), "3"),
            ("state-not-array", opt_state + ("exp_avg",), [1, 2]),
            ("state-entry-list", opt_state, []),
            ("state-unknown-index", ("optimizer", "state", "state", "99"), {"step": 1}),
            ("groups-not-list", ("optimizer", "state", "param_groups"), {"a": 1}),
            ("group-params-strings", ("optimizer", "state", "param_groups", 0, "params"),
             ["a", "b"]),
            ("lr-string", ("optimizer", "state", "param_groups", 0, "lr"), "fast"),
            ("lr-negative", ("optimizer", "state", "param_groups", 0, "lr"), -1.0),
            ("betas-scalar", ("optimizer", "state", "param_groups", 0, "betas"), 0.9),
            ("group-names-missing", ("optimizer", "group_params", 0, 0), "no.such"),
            ("group-names-int", ("optimizer", "group_params"), 3),
            ("optimizer-class", ("optimizer", "class"), "Evil"),
            ("loss-class", ("loss", "class"), "_Loss"),
            ("loss-config", ("loss", "config"), {"reduction": 5}),
            ("epoch-string", ("trainer", "epoch"), "abc"),
            ("trainer-rng", ("trainer", "rng"), {"bit_generator": "PCG64"}),
            ("trainer-not-dict", ("trainer",), [1])]:
        cases[f"trainer-{label}"] = build(_set(tmeta, path, value), tmembers)
    key = next(k for k in tmembers if k.endswith("exp_avg.npy"))
    shape = np.lib.format.read_array(BytesIO(tmembers[key])).shape
    cases["trainer-exp-avg-wrong-shape"] = build(tmeta, dict(tmembers, **{
        key: npy(np.zeros((shape[0] + 1,) + shape[1:], np.float32))}))
    cases["trainer-exp-avg-int"] = build(tmeta, dict(tmembers, **{
        key: npy(np.zeros(shape, np.int32))}))
    cases["trainer-exp-avg-missing"] = build(tmeta, {k: v for k, v in tmembers.items()
                                                     if k != key})

    out: List[Tuple[str, str]] = []
    for name, data in cases.items():
        p = os.path.join(directory, name.replace("/", "_") + ".rnnkit")
        with open(p, "wb") as f:
            f.write(data)
        out.append((name, p))
    out += filesystem_cases(directory)
    return out


def filesystem_cases(directory: str) -> List[Tuple[str, str]]:
    """Paths that are not regular files, or not readable ones."""
    out = []
    d = os.path.join(directory, "a_directory.rnnkit")
    os.mkdir(d)
    out.append(("directory", d))
    if hasattr(os, "mkfifo"):
        fifo = os.path.join(directory, "a_fifo.rnnkit")
        os.mkfifo(fifo)
        out.append(("fifo", fifo))
        link = os.path.join(directory, "link_to_fifo.rnnkit")
        os.symlink(fifo, link)
        out.append(("symlink-to-fifo", link))
    if hasattr(os, "symlink"):
        loop = os.path.join(directory, "loop.rnnkit")
        os.symlink(loop, loop)
        out.append(("symlink-loop", loop))
        to_dir = os.path.join(directory, "link_to_dir.rnnkit")
        os.symlink(d, to_dir)
        out.append(("symlink-to-directory", to_dir))
    if os.path.exists("/dev/zero"):
        out.append(("device-dev-zero", "/dev/zero"))
    locked = os.path.join(directory, "unreadable.rnnkit")
    with open(locked, "wb") as f:      # junk too: as root, chmod 000 does not stop reading
        f.write(b"PK\x03\x04junk")
    os.chmod(locked, 0)
    out.append(("unreadable", locked))
    return out


# ------------------------------------------------------------------------ random mutations


def _random_json(rng: np.random.Generator) -> Any:
    choices: List[Callable[[], Any]] = [
        lambda: None, lambda: True, lambda: int(rng.integers(-5, 5)),
        lambda: 10 ** int(rng.integers(1, 30)), lambda: -(10 ** int(rng.integers(1, 70))),
        lambda: float(rng.standard_normal()), lambda: "x" * int(rng.integers(0, 5)),
        lambda: [], lambda: {}, lambda: [1, "a", None], lambda: {"__array__": "model/weight"},
        lambda: {"__array__": 5}, lambda: {"class": "Linear", "config": {}},
        lambda: json.loads("[" * 80 + "]" * 80), lambda: "float16", lambda: 2 ** 64]
    return choices[int(rng.integers(len(choices)))]()


def _paths(obj: Any, prefix: Tuple[Any, ...] = ()) -> List[Tuple[Any, ...]]:
    out = [prefix] if prefix else []
    if isinstance(obj, dict):
        for k, v in obj.items():
            out += _paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out += _paths(v, prefix + (i,))
    return out


def mutate(rng: np.random.Generator, meta: Dict[str, Any], members: Dict[str, bytes],
           raw: bytes) -> bytes:
    """One random hostile variant of a valid file (its bytes ``raw``, parsed as ``meta`` and
    ``members``)."""
    how = int(rng.integers(9))
    if how == 0:                                   # flip bits
        b = bytearray(raw)
        for off in rng.integers(0, len(b), int(rng.integers(1, 20))):
            b[off] ^= 1 << int(rng.integers(8))
        return bytes(b)
    if how == 1:                                   # truncate
        return raw[:int(rng.integers(0, len(raw)))]
    if how == 2:                                   # overwrite a run with random bytes
        b = bytearray(raw)
        off = int(rng.integers(len(b)))
        run = rng.integers(0, 256, int(rng.integers(1, 64)), dtype=np.uint8).tobytes()
        b[off:off + len(run)] = run
        return bytes(b)
    if how in (3, 4, 5):                           # change a JSON value
        m = json.loads(json.dumps(meta))
        for _ in range(int(rng.integers(1, 4))):
            paths = _paths(m)
            if not paths:
                break
            p = paths[int(rng.integers(len(paths)))]
            m = _set(m, p, _random_json(rng))
        return build(m, members)
    mem = dict(members)
    names = list(mem)
    if how == 6 and names:                         # drop, duplicate or rename a member
        n = names[int(rng.integers(len(names)))]
        op = int(rng.integers(3))
        if op == 0:
            del mem[n]
        elif op == 1:
            mem[n[:-4] + "_copy.npy"] = mem[n]
        else:
            mem["model/" + str(rng.integers(100)) + ".npy"] = mem.pop(n)
        return build(meta, mem)
    if how == 7 and names:                         # a member's header lies
        n = names[int(rng.integers(len(names)))]
        arr = np.lib.format.read_array(BytesIO(mem[n]))
        shape = tuple(int(s) * int(rng.integers(0, 3)) + int(rng.integers(-1, 2))
                      for s in arr.shape) or (int(rng.integers(0, 10 ** 12)),)
        descr = ["<f4", "<f8", "<i8", "|u1", "|b1", "<f2", "|O", "<U3", ">f4"][
            int(rng.integers(9))]
        mem[n] = npy_raw("{'descr': %r, 'fortran_order': %s, 'shape': %r, }"
                         % (descr, bool(rng.integers(2)), shape), arr.tobytes())
        return build(meta, mem)
    # a member deflated, perhaps with a lying size
    entries = [Entry("__meta__.npy", meta_npy(meta))] + [Entry(k, v) for k, v in mem.items()]
    e = entries[int(rng.integers(len(entries)))]
    e.method = 8
    if rng.integers(2):
        e.file_size = int(rng.integers(0, 2 ** 32))
    return make_zip(entries)


# ------------------------------------------------------------------------ the runner


def _rss_peak_bytes() -> int:
    import resource
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024   # Linux reports KiB


def _proc_status(field: str) -> Optional[int]:
    """A byte count from /proc/self/status (Linux), e.g. "VmRSS"; None elsewhere."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _limit_address_space(extra: int) -> None:
    """RLIMIT_AS at the current size + ``extra``: a load that runs away gets MemoryError
    (reported as a wrong outcome) instead of swapping a shared machine to death."""
    try:
        import resource
    except ImportError:  # pragma: no cover - Windows
        return
    size = _proc_status("VmSize")
    if size is not None:
        resource.setrlimit(resource.RLIMIT_AS, (size + extra, size + extra))


def run(cases: List[Dict[str, str]], per_case_timeout: float = 30.0) -> Dict[str, Any]:
    """Load every case; the results (see the module docstring)."""
    import signal
    import time

    import rnnkit
    # Growth is measured from the resident size now, not from the high-water mark of the
    # imports, which a load could climb back to unseen.
    baseline = _proc_status("VmRSS") or _rss_peak_bytes()
    _limit_address_space(1 << 30)
    results = []

    def alarm(signum: int, frame: Any) -> None:
        raise TimeoutError("load took longer than the per-case timeout")

    if hasattr(signal, "SIGALRM"):
        signal.signal(signal.SIGALRM, alarm)
    for case in cases:
        before = max(_proc_status("VmRSS") or 0, baseline, _rss_peak_bytes())
        t0 = time.perf_counter()
        if hasattr(signal, "SIGALRM"):
            signal.setitimer(signal.ITIMER_REAL, per_case_timeout)
        try:
            rnnkit.load(case["path"])
            outcome, message = "loaded", ""
        except BaseException as exc:  # noqa: BLE001 - classifying is the point
            outcome, message = type(exc).__name__, str(exc)
            if isinstance(exc, KeyboardInterrupt):
                raise
        finally:
            if hasattr(signal, "SIGALRM"):
                signal.setitimer(signal.ITIMER_REAL, 0)
        results.append({"name": case["name"], "path": case["path"], "outcome": outcome,
                        "message": message[:2000], "seconds": time.perf_counter() - t0,
                        "peak_growth": max(0, _rss_peak_bytes() - before)})
    return {"results": results, "peak_growth": _rss_peak_bytes() - baseline}


def main(argv: List[str]) -> int:
    with open(argv[1]) as f:
        cases = json.load(f)
    out = run(cases)
    with open(argv[2], "w") as f:
        json.dump(out, f)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
