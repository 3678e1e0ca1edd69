"""rnnkit.load of hostile files (tests/hostile_files.py builds them): truncations, bit flips,
zip bombs, lying sizes and shapes, wrong dtypes, object arrays, pickles and torch files,
nested or huge JSON, unexpected members, FIFOs, directories, devices and links.

Every one must raise ValueError naming the path -- never another type, never numpy's advice
to "load it unsafely using allow_pickle=" -- within 3 s, and the whole set must stay within
300 MB of peak-RSS growth. The loads run in a subprocess (a fresh ru_maxrss, and a hang or a
crash there fails this test instead of killing pytest)."""

import json
import os
import subprocess
import sys
import time

import pytest

import rnnkit

import hostile_files

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
PYTHON_DIR = os.path.dirname(os.path.dirname(os.path.abspath(rnnkit.__file__)))
MAX_SECONDS_EACH = 3.0
MAX_SECONDS_ALL = 20.0
MAX_PEAK_GROWTH = 300 << 20


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    d = tmp_path_factory.mktemp("hostile")
    cases = hostile_files.fixed_cases(str(d))
    with open(d / "cases.json", "w") as f:
        json.dump([{"name": n, "path": p} for n, p in cases], f)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([PYTHON_DIR, TESTS_DIR]))
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, hostile_files.__file__, str(d / "cases.json"),
                           str(d / "results.json")], env=env, capture_output=True, text=True,
                          timeout=180)
    wall = time.monotonic() - t0
    assert proc.returncode == 0, proc.stderr[-3000:]
    with open(d / "results.json") as f:
        out = json.load(f)
    assert [r["name"] for r in out["results"]] == [n for n, _ in cases]
    return out, wall


def _report(rows):
    return "\n".join(f"  {r['name']}: {r['outcome']} ({r['seconds']:.2f} s, "
                     f"+{r['peak_growth'] >> 20} MB) {r['message'][:300]}" for r in rows)


def test_every_hostile_file_is_a_value_error_naming_its_path(hostile):
    out, _ = hostile
    bad = []
    for r in out["results"]:
        allowed = ("ValueError", "loaded") if r["name"].startswith("maybe-") else ("ValueError",)
        if r["outcome"] not in allowed or (r["outcome"] == "ValueError"
                                           and r["path"] not in r["message"]):
            bad.append(r)
    assert not bad, f"{len(bad)} of {len(out['results'])} cases:\n" + _report(bad)
    # the set is meant to be hostile: nearly all bit flips break something a check sees
    maybe = [r for r in out["results"] if r["name"].startswith("maybe-")]
    assert sum(r["outcome"] == "ValueError" for r in maybe) >= len(maybe) // 2


def test_each_hostile_file_fails_fast(hostile):
    out, wall = hostile
    slow = [r for r in out["results"] if r["seconds"] > MAX_SECONDS_EACH]
    assert not slow, _report(slow)
    total = sum(r["seconds"] for r in out["results"])
    assert total <= MAX_SECONDS_ALL, f"{total:.1f} s for all cases ({wall:.1f} s wall)"


def test_hostile_files_use_bounded_memory(hostile):
    out, _ = hostile
    heavy = sorted(out["results"], key=lambda r: -r["peak_growth"])[:5]
    assert out["peak_growth"] <= MAX_PEAK_GROWTH, \
        f"peak RSS grew by {out['peak_growth'] >> 20} MB; largest:\n" + _report(heavy)


def test_no_message_suggests_unpickling_and_torch_files_are_named(hostile):
    out, _ = hostile
    by_name = {r["name"]: r for r in out["results"]}
    assert not [r for r in out["results"] if "allow_pickle" in r["message"]]
    for name in ("torch-zip", "torch-legacy", "pickle"):
        assert "never unpickles" in by_name[name]["message"], by_name[name]
    assert "torch" in by_name["torch-zip"]["message"]
    for name, word in [("directory", "directory"), ("fifo", "FIFO"),
                       ("symlink-to-fifo", "FIFO"), ("device-dev-zero", "device"),
                       ("zip-bomb-param", "compressed"), ("zip-bomb-meta", "compressed"),
                       ("zip-bomb-unexpected-member", "compressed"),
                       ("overlapping-entries", "overlapping"),
                       ("member-extra-npy", "unexpected member"),
                       ("arch-num-layers-1e9", "lacks"), ("dtype-object", "never unpickles"),
                       ("trainer-step-negative", "step"),
                       ("trainer-exp-avg-wrong-shape", "shape")]:
        if name in by_name:
            assert word in by_name[name]["message"], by_name[name]


def test_a_missing_file_or_dangling_link_stays_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        rnnkit.load(tmp_path / "nothing.rnnkit")
    link = tmp_path / "dangling.rnnkit"
    link.symlink_to(tmp_path / "nothing.rnnkit")
    with pytest.raises(FileNotFoundError):
        rnnkit.load(link)


def test_the_valid_bases_of_the_hostile_set_load(tmp_path):
    # The hostile files are mutations of these: they must be accepted, or the test above
    # would pass for the wrong reason.
    paths = hostile_files.base_files(str(tmp_path))
    model = rnnkit.load(paths["model"])
    assert rnnkit.load_metadata(paths["model"]) == {"vocab": list("abcdefghijk")}
    assert len(list(model.parameters())) == 1 + 16 + 2
    assert rnnkit.load(paths["trainer"]).global_step > 0
    meta, members = hostile_files.read_file(paths["linear"])
    rebuilt = tmp_path / "rebuilt.rnnkit"
    rebuilt.write_bytes(hostile_files.build(meta, members))   # our own zip writer
    assert rnnkit.load(rebuilt).weight.shape == (2, 3)


@pytest.mark.parametrize("zipped", [True, False], ids=["torch-zip", "torch-legacy"])
def test_a_real_torch_file_is_refused_without_unpickling(tmp_path, zipped):
    torch = pytest.importorskip("torch")
    p = tmp_path / "weights.pt"
    torch.save(torch.nn.Linear(3, 2).state_dict(), p, _use_new_zipfile_serialization=zipped)
    with pytest.raises(ValueError, match="never unpickles") as info:
        rnnkit.load(p)
    assert str(p) in str(info.value) and "allow_pickle" not in str(info.value)
    with pytest.raises(ValueError, match="never unpickles"):
        rnnkit.load_metadata(p)
