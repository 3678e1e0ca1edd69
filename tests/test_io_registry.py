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
    with pytest.raises(TypeError, match="cannot save a Linear"):
        rnnkit.save(Linear(2, 2), tmp_path / "m.rnnkit")


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
