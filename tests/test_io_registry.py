"""rnnkit.io's kind registry and class lists: what a file may name, what save accepts, and
errors that say whose mistake it was."""

import json

import numpy as np
import pytest

import rnnkit
from rnnkit import io, losses, nn, optim
from rnnkit.train import Trainer

from _train_helpers import make_trainer, reg_model


def _write(path, meta, **arrays):
    arrays["__meta__"] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def _model_meta(arch):
    return {"format": "rnnkit", "format_version": 1, "kind": "model",
            "model": {"architecture": arch, "rng": {}}}


class Counter:
    """A user's object with its own kind."""

    def __init__(self, n=0, table=None):
        self.n = n
        self.table = np.zeros(3) if table is None else table


def _save_counter(obj, arrays):
    return {"counter": io.to_json({"n": obj.n, "table": obj.table}, arrays, "counter")}


def _load_counter(meta, arrays, into):
    state = io.from_json(meta["counter"], arrays)
    out = into if into is not None else Counter()
    out.n, out.table = state["n"], state["table"]
    return out


@pytest.fixture
def counter_kind():
    io.register_kind("counter", Counter, _save_counter, _load_counter)
    yield
    del io._KINDS["counter"]


def test_a_registered_kind_round_trips(tmp_path, counter_kind):
    rnnkit.save(Counter(7, np.arange(4.0)), tmp_path / "c.rnnkit")
    back = rnnkit.load(tmp_path / "c.rnnkit")
    assert isinstance(back, Counter) and back.n == 7
    np.testing.assert_array_equal(back.table, np.arange(4.0))
    target = Counter()
    assert rnnkit.load(tmp_path / "c.rnnkit", into=target) is target and target.n == 7
    with pytest.raises(TypeError, match="counter file loads into a Counter"):
        rnnkit.load(tmp_path / "c.rnnkit", into=reg_model())


@pytest.mark.parametrize("kind", ["model", "optimizer", "trainer"])
def test_into_of_another_kind_is_a_type_error_not_a_corrupted_file(tmp_path, kind):
    model = reg_model()
    tr = make_trainer(model)
    obj = {"model": model, "optimizer": tr.optimizer, "trainer": tr}[kind]
    rnnkit.save(obj, tmp_path / "f.rnnkit")
    wrong = {"model": tr.optimizer, "optimizer": model, "trainer": model}[kind]
    with pytest.raises(TypeError, match=f"a {kind} file loads into"):
        rnnkit.load(tmp_path / "f.rnnkit", into=wrong)


@pytest.mark.parametrize("name", ["Module", "Parameter", "_RNNBase", "_CellBase", "Trainer",
                                  "builtins.eval", "__class__"])
def test_a_file_can_name_only_public_layer_classes(tmp_path, name):
    p = tmp_path / "f.rnnkit"
    _write(p, _model_meta({"class": name, "config": {}}))
    with pytest.raises(ValueError, match="unknown layer class") as info:
        rnnkit.load(p)
    assert "f.rnnkit" in str(info.value)


def test_a_file_can_pass_only_the_saved_constructor_arguments(tmp_path):
    p = tmp_path / "f.rnnkit"
    lstm = nn.LSTM(2, 3, seed=0)
    arrays = {"model/" + k: v for k, v in lstm.state_dict().items()}
    config = dict(lstm.get_config(), seed=5)        # seed is not a saved argument
    _write(p, _model_meta({"class": "LSTM", "config": config}), **arrays)
    with pytest.raises(ValueError, match="seed") as info:
        rnnkit.load(p)
    assert "f.rnnkit" in str(info.value)


def test_sequential_children_are_rebuilt_in_order(tmp_path):
    model = nn.Sequential(nn.Linear(2, 3, seed=0), nn.Sequential(nn.Dropout(0.5, seed=1)),
                          nn.Linear(3, 1, bias=False, seed=2))
    rnnkit.save(model, tmp_path / "m.rnnkit")
    back = rnnkit.load(tmp_path / "m.rnnkit")
    assert [type(m) for m in back] == [nn.Linear, nn.Sequential, nn.Linear]
    assert back[2].bias is None and back[1][0].p == 0.5


def test_a_subclass_is_not_saved_even_under_its_parents_name(tmp_path):
    class CrossEntropyLoss(losses.CrossEntropyLoss):
        def forward(self, prediction, target):
            return 2 * super().forward(prediction, target)

    class Linear(nn.Linear):
        pass

    model = reg_model()
    tr = Trainer(model, CrossEntropyLoss(), optim.SGD(model.parameters(), lr=0.1))
    with pytest.raises(TypeError, match="cannot save a trainer with a CrossEntropyLoss"):
        rnnkit.save(tr, tmp_path / "t.rnnkit")
    # A layer subclass is the user's class: saved under its own name, never its parent's.
    rnnkit.save(Linear(2, 2), tmp_path / "m.rnnkit")
    with np.load(tmp_path / "m.rnnkit") as z:
        arch = json.loads(z["__meta__"].tobytes())["model"]["architecture"]
    assert arch["class"].endswith(".Linear") and arch["class"] != "Linear"
    with pytest.raises(ValueError, match="into=") as info:
        rnnkit.load(tmp_path / "m.rnnkit")
    assert "m.rnnkit" in str(info.value)


def test_losses_rebuild_from_their_config():
    for loss in (losses.CrossEntropyLoss(ignore_index=4, reduction="sum"),
                 losses.MSELoss(reduction="none"),
                 losses.BCEWithLogitsLoss(pos_weight=[1.5, 2.0])):
        config = loss.get_config()
        json.dumps(config)                                    # plain JSON
        again = type(loss)(**config)
        assert again.get_config() == config
        for name in type(loss)._config_args:
            np.testing.assert_array_equal(getattr(again, name), getattr(loss, name))


def test_a_file_naming_an_unknown_loss_is_a_clear_value_error(tmp_path):
    model = reg_model()
    rnnkit.save(make_trainer(model), tmp_path / "t.rnnkit")
    with np.load(tmp_path / "t.rnnkit") as z:
        arrays = {k: z[k] for k in z.files}
    meta = json.loads(arrays.pop("__meta__").tobytes())
    meta["loss"]["class"] = "_Loss"
    _write(tmp_path / "bad.rnnkit", meta, **arrays)
    with pytest.raises(ValueError, match="unknown loss") as info:
        rnnkit.load(tmp_path / "bad.rnnkit")
    assert "bad.rnnkit" in str(info.value)


# ============================================================================ user modules


class TwoLayer(nn.Module):
    """A user's model: its constructor builds its children from its config."""

    _config_args = ("n_in", "n_hidden")

    def __init__(self, n_in, n_hidden, seed=None):
        super().__init__()
        self.n_in, self.n_hidden = n_in, n_hidden
        self.rec = nn.GRU(n_in, n_hidden, seed=seed)
        self.head = nn.Linear(n_hidden, 1, seed=None if seed is None else seed + 1)

    def forward(self, x):
        return self.head(self.rec(x)[0])


def _bitwise_equal(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    for k in sa:
        assert sa[k].dtype == sb[k].dtype and sa[k].tobytes() == sb[k].tobytes(), k


def test_a_user_module_loads_into_a_fresh_instance_bitwise(tmp_path):
    model = TwoLayer(3, 4, seed=1)
    rnnkit.save(model, tmp_path / "u.rnnkit")
    fresh = TwoLayer(3, 4, seed=99)
    assert rnnkit.load(tmp_path / "u.rnnkit", into=fresh) is fresh
    _bitwise_equal(fresh, model)
    # without into and without registration: what to do, naming the file
    with pytest.raises(ValueError, match="register_module") as info:
        rnnkit.load(tmp_path / "u.rnnkit")
    assert "u.rnnkit" in str(info.value) and "into=" in str(info.value)
    # an instance of another shape is refused and left as it was
    other = TwoLayer(3, 5, seed=2)
    before = other.state_dict()
    with pytest.raises(ValueError, match="u.rnnkit"):
        rnnkit.load(tmp_path / "u.rnnkit", into=other)
    for k, v in other.state_dict().items():
        assert v.tobytes() == before[k].tobytes(), k


@pytest.fixture
def registered():
    io.register_module(TwoLayer, name="tests.TwoLayer")
    yield
    io._USER_MODULES.pop("tests.TwoLayer", None)


def test_a_registered_user_module_is_rebuilt_from_its_config(tmp_path, registered):
    model = TwoLayer(3, 4, seed=1)
    rnnkit.save(nn.Sequential(model, nn.Dropout(0.1)), tmp_path / "u.rnnkit")
    with np.load(tmp_path / "u.rnnkit") as z:
        arch = json.loads(z["__meta__"].tobytes())["model"]["architecture"]
    assert arch["layers"][0] == {"class": "tests.TwoLayer",
                                 "config": {"n_in": 3, "n_hidden": 4}}
    back = rnnkit.load(tmp_path / "u.rnnkit")
    assert isinstance(back[0], TwoLayer) and (back[0].n_in, back[0].n_hidden) == (3, 4)
    _bitwise_equal(back[0], model)
    x = np.random.default_rng(0).standard_normal((5, 2, 3)).astype(np.float32)
    np.testing.assert_array_equal(back[0](x), model(x))


def test_register_module_checks_its_arguments():
    with pytest.raises(TypeError, match="Module"):
        io.register_module(int)
    with pytest.raises(ValueError, match="LSTM"):
        io.register_module(TwoLayer, name="LSTM")     # rnnkit's own names are reserved
    assert "LSTM" not in io._USER_MODULES


def test_register_module_as_a_decorator(tmp_path):
    @io.register_module(name="tests.Scaled")
    class Scaled(nn.Module):
        _config_args = ("size",)

        def __init__(self, size):
            super().__init__()
            self.size = size
            self.w = nn.Parameter(np.arange(size, dtype=np.float64))

    try:
        rnnkit.save(Scaled(4), tmp_path / "s.rnnkit")
        back = rnnkit.load(tmp_path / "s.rnnkit")
        assert type(back) is Scaled
        np.testing.assert_array_equal(back.w.data, np.arange(4.0))
    finally:
        io._USER_MODULES.pop("tests.Scaled", None)


def test_an_optimiser_file_loads_only_into_its_own_class(tmp_path):
    model = reg_model()
    rnnkit.save(optim.Adam(model.parameters(), lr=0.1), tmp_path / "o.rnnkit")
    sgd = optim.SGD(model.parameters(), lr=0.5)
    with pytest.raises(TypeError, match="Adam state loads into an Adam, got SGD"):
        rnnkit.load(tmp_path / "o.rnnkit", into=sgd)
    assert sgd.param_groups[0]["lr"] == 0.5


def test_a_model_of_another_architecture_as_into_is_named_in_the_error(tmp_path):
    rnnkit.save(nn.Linear(3, 2, seed=0), tmp_path / "m.rnnkit")
    with pytest.raises(ValueError, match="do not fit the Linear given as into") as info:
        rnnkit.load(tmp_path / "m.rnnkit", into=nn.Linear(3, 5))
    assert "m.rnnkit" in str(info.value)
