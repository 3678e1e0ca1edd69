"""Sequential: layers applied in order, backpropagated in reverse."""
from __future__ import annotations

from typing import Any, Callable, Iterator, List

from .module import Module


class Sequential(Module):
    """``Sequential(*layers)``: ``y = layers[-1](... layers[0](x))``, as ``torch.nn.Sequential``.

    ``forward(x, lengths=None)`` passes ``lengths`` to the layers that take it (the recurrent
    layers and :class:`Last`); a recurrent layer passes on only its output y (its final
    state is dropped). ``backward(dy)`` runs each layer's backward in reverse order and
    returns the gradient of x (None when the first layer is an :class:`Embedding`).

    Children are named "0", "1", ... so state-dict names are dotted as torch's
    ("0.weight", "1.weight_ih_l0", ...). Example, many-to-one classification::

        model = Sequential(Embedding(V, E), LSTM(E, H), Last(), Linear(H, C))
        logits = model(tokens, lengths=lengths)          # tokens (T, B) -> (B, C)
    """

    _config_children = True    # rebuilt as Sequential(*children) by rnnkit.load

    def __init__(self, *layers: Module) -> None:
        super().__init__()
        for i, layer in enumerate(layers):
            if not isinstance(layer, Module):
                raise TypeError(f"Sequential layer {i} must be a rnnkit.nn Module, got "
                                f"{type(layer).__name__}")
            setattr(self, str(i), layer)

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._modules.values())

    def __getitem__(self, i: int) -> Module:
        layers = list(self._modules.values())
        return layers[i]

    def append(self, layer: Module) -> "Sequential":
        if not isinstance(layer, Module):
            raise TypeError(f"Sequential layer must be a rnnkit.nn Module, got "
                            f"{type(layer).__name__}")
        setattr(self, str(len(self)), layer)
        return self

    def forward(self, x: Any, lengths: Any = None) -> Any:
        for layer in self:
            if getattr(layer, "_takes_lengths", False):
                x = layer(x, lengths=lengths)
            else:
                x = layer(x)
            if getattr(layer, "_returns_state", False):
                x = x[0]
        return x

    def backward(self, dy: Any) -> Any:
        grad = dy
        layers = list(self)
        hooks = self.__dict__.get("_layer_backward_hooks")
        for i in reversed(range(len(layers))):
            if grad is None:
                break
            layer = layers[i]
            out = layer.backward(grad)
            grad = out[0] if getattr(layer, "_returns_state", False) else out
            for hook in list(hooks or ()):
                hook(i, layer)
        return grad

    def register_layer_backward_hook(self, hook: Callable[[int, Module], None]) -> "_HookHandle":
        """Call ``hook(index, layer)`` each time a layer's backward has finished inside
        :meth:`backward` (so that layer's parameter gradients are complete for this pass):
        rnnkit.distributed starts summing them over the ranks there, while the earlier layers'
        backward runs. Layers before an Embedding (which returns no input gradient) are not
        reached. Returns a handle whose ``remove()`` unregisters the hook."""
        if not callable(hook):
            raise TypeError(f"hook must be callable, got {type(hook).__name__}")
        hooks = self.__dict__.setdefault("_layer_backward_hooks", [])
        hooks.append(hook)
        return _HookHandle(hooks, hook)


class _HookHandle:
    """Removes a registered hook (torch's ``RemovableHandle``)."""

    def __init__(self, hooks: List[Any], hook: Any) -> None:
        self._hooks, self._hook = hooks, hook

    def remove(self) -> None:
        if self._hook in self._hooks:
            self._hooks.remove(self._hook)


