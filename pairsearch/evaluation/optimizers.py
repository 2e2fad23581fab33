"""Optimizers by name, with torch's defaults for everything but the learning rate.

Each optimizer applies torch's own update rule, the function of
``torch.optim._functional`` that ``torch.optim.Adam`` and the others call in their
``step``, with torch's default hyperparameters read from the class's signature; only
the state (moments, step counts) is kept here. The classes themselves are not used
because creating or stepping any of them imports ``torch._dynamo`` (their methods are
wrapped to keep them out of compiled graphs): 1.2–1.7 s of start-up on a 2-core
machine, as long as the training of a whole 5-fold evaluation. ``tests/test_optimizers.py``
checks that each optimizer here updates weights exactly as its ``torch.optim`` class does.

On a CPU the fused implementations are used (``fused=True``, torch ≥ 2.4): one kernel per
parameter instead of about ten operations. A step of a 5-member siamese_aux ensemble's
Adam: 0.09 ms fused against 0.35 ms (0.28 ms with ``foreach``) on 2 AMD EPYC cores. On
other devices torch's own default implementation runs.
"""

from __future__ import annotations

import inspect
from typing import Callable, Iterable, Literal, Sequence

import torch
from torch.optim import _functional

try:
    from torch.optim.optimizer import _get_fused_kernels_supported_devices
except ImportError:  # older torch: no fused CPU kernels either
    def _get_fused_kernels_supported_devices() -> list[str]:
        return []

OptimizerName = Literal["sgd", "adam", "adagrad", "adamw"]

_CLASSES: dict[str, type[torch.optim.Optimizer]] = {
    "sgd": torch.optim.SGD,
    "adam": torch.optim.Adam,
    "adagrad": torch.optim.Adagrad,
    "adamw": torch.optim.AdamW,
}


def fused_on(device: torch.device) -> bool:
    """Whether the optimizers use torch's fused implementations for weights on ``device``.

    Only on a CPU, where torch has them since 2.4 and they were measured (see the module
    docstring); elsewhere torch picks its default.
    """
    return device.type == "cpu" and "cpu" in _get_fused_kernels_supported_devices()


def torch_defaults(name: str) -> dict[str, object]:
    """The keyword defaults of ``torch.optim``'s class for optimizer ``name``."""
    parameters = inspect.signature(_CLASSES[name]).parameters.values()
    return {p.name: p.default for p in parameters if p.default is not inspect.Parameter.empty}


class Optimizer:
    """One of torch's update rules over a fixed list of parameters.

    Stacked ensemble weights (a leading member axis) may train each member with its
    own learning rate: ``member_lrs`` gives one rate per member, and each run of
    consecutive members with the same rate is updated as one slice of every tensor.
    The rules act element-wise, so a member's update does not depend on the others.

    Args:
        name: ``sgd``, ``adam``, ``adagrad`` or ``adamw``.
        parameters: The tensors to train.
        lr: Learning rate (of every member, unless ``member_lrs`` is given).
        member_lrs: One learning rate per member (the leading axis of every parameter).

    Raises:
        ValueError: If ``name`` is not one of the optimizers above, or ``member_lrs`` does
            not match the parameters' leading axis.
    """

    def __init__(self, name: str, parameters: Iterable[torch.nn.Parameter], lr: float,
                 member_lrs: Sequence[float] | None = None) -> None:
        if name not in _CLASSES:
            raise ValueError(f"unknown optimizer {name!r}; valid: {', '.join(_CLASSES)}")
        self.name = name
        self.lr = lr
        self.params = list(parameters)
        self.defaults = torch_defaults(name)
        # fused=None (not False) elsewhere: torch then picks its own default implementation.
        self.fused = bool(self.params) and all(
            fused_on(p.device) and p.dtype == torch.float32 for p in self.params)
        self._slices = _member_slices(member_lrs, self.params) if member_lrs else [(None, lr)]
        # Step counts as torch keeps them when not capturable: float scalars on the CPU,
        # one per parameter and slice (each slice is stepped as a parameter of its own).
        self._steps = [[torch.tensor(0.0) for _ in self.params] for _ in self._slices]
        moments = name in ("adam", "adamw")
        self._first = self._like_params(0.0) if moments else []
        self._second = self._like_params(0.0) if moments else []
        self._sums = (self._like_params(float(self.defaults["initial_accumulator_value"]))
                      if name == "adagrad" else [])
        self._update: Callable[..., None] = getattr(self, f"_{name}")

    def _like_params(self, value: float) -> list[torch.Tensor]:
        return [torch.full_like(p, value, memory_format=torch.preserve_format)
                for p in self.params]

    def _state_lists(self) -> dict[str, list[torch.Tensor]]:
        """The per-parameter state tensors, by name (each with the member axis first)."""
        return {"first": self._first, "second": self._second, "sums": self._sums}

    def _slice_of(self, member: int) -> int:
        for index, (part, _) in enumerate(self._slices):
            if part is None or part.start <= member < part.stop:
                return index
        raise ValueError(f"member {member} is outside the optimizer's member axis")

    def member_state(self, member: int) -> dict[str, object]:
        """Member ``member``'s optimizer state (copies): its step count and, per
        parameter, its slice of each state tensor; what ``load_member_states`` takes to
        continue its training exactly."""
        steps = self._steps[self._slice_of(member)]
        return {"steps": [float(t) for t in steps],
                **{name: [t[member].clone() for t in state]
                   for name, state in self._state_lists().items()}}

    def load_member_states(self, states: Sequence[dict[str, object]]) -> None:
        """Continue from ``member_state`` of each member, in member order.

        Raises:
            ValueError: If the states do not fit this optimizer, or members sharing a
                learning rate (one step count) come with different step counts.
        """
        own = self._state_lists()
        for member, state in enumerate(states):
            for name, tensors in own.items():
                saved = state.get(name, [])
                if len(saved) != len(tensors):
                    raise ValueError(f"optimizer state '{name}' of member {member} holds "
                                     f"{len(saved)} tensors, not {len(tensors)}")
                for target, value in zip(tensors, saved):
                    target[member].copy_(value)
        for index, (part, _) in enumerate(self._slices):
            members = range(len(states))[part] if part is not None else range(len(states))
            counts = {tuple(states[m]["steps"]) for m in members}
            if len(counts) != 1:
                raise ValueError("members with one learning rate resume from different "
                                 "step counts")
            for target, value in zip(self._steps[index], counts.pop()):
                target.fill_(value)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Forget the gradients (``set_to_none=False`` zeroes them in place instead)."""
        for p in self.params:
            if set_to_none:
                p.grad = None
            elif p.grad is not None:
                p.grad.zero_()

    @torch.no_grad()
    def step(self) -> None:
        """One update of every parameter that has a gradient."""
        live = [i for i, p in enumerate(self.params) if p.grad is not None]
        if not live:
            return
        for (part, lr), steps in zip(self._slices, self._steps):
            def pick(state: list[torch.Tensor]) -> list[torch.Tensor]:
                return [state[i] if part is None else state[i][part] for i in live]

            grads = [self.params[i].grad if part is None else self.params[i].grad[part]
                     for i in live]
            self._update(pick, grads, [steps[i] for i in live], lr)

    def _sgd(self, pick, grads: list[torch.Tensor], steps: list[torch.Tensor],
             lr: float) -> None:
        d = self.defaults
        _functional.sgd(pick(self.params), grads, [None] * len(grads),
                        weight_decay=d["weight_decay"], momentum=d["momentum"], lr=lr,
                        dampening=d["dampening"], nesterov=d["nesterov"],
                        maximize=d["maximize"], fused=self.fused or None)

    def _adam(self, pick, grads: list[torch.Tensor], steps: list[torch.Tensor],
              lr: float) -> None:
        d = self.defaults
        beta1, beta2 = d["betas"]
        update = _functional.adamw if self.name == "adamw" else _functional.adam
        update(pick(self.params), grads, pick(self._first), pick(self._second), [], steps,
               amsgrad=d["amsgrad"], beta1=beta1, beta2=beta2, lr=lr,
               weight_decay=d["weight_decay"], eps=d["eps"], maximize=d["maximize"],
               fused=self.fused or None)

    _adamw = _adam

    def _adagrad(self, pick, grads: list[torch.Tensor], steps: list[torch.Tensor],
                 lr: float) -> None:
        d = self.defaults
        _functional.adagrad(pick(self.params), grads, pick(self._sums), steps, lr=lr,
                            weight_decay=d["weight_decay"], lr_decay=d["lr_decay"],
                            eps=d["eps"], maximize=d["maximize"], fused=self.fused or None)


def _member_slices(member_lrs: Sequence[float], params: list[torch.Tensor]
                   ) -> list[tuple[slice | None, float]]:
    """Runs of consecutive members with one learning rate, as slices of the member axis."""
    members = len(member_lrs)
    if any(p.ndim == 0 or p.shape[0] != members for p in params):
        raise ValueError(f"member_lrs has {members} rates; every parameter needs a leading "
                         f"member axis of that size")
    if len(set(member_lrs)) == 1:
        return [(None, float(member_lrs[0]))]
    slices, start = [], 0
    for index in range(1, members + 1):
        if index == members or member_lrs[index] != member_lrs[start]:
            slices.append((slice(start, index), float(member_lrs[start])))
            start = index
    return slices


def make_optimizer(name: str, parameters: Iterable[torch.nn.Parameter], lr: float,
                   member_lrs: Sequence[float] | None = None) -> Optimizer:
    """A fresh optimizer ``name`` over ``parameters`` with learning rate ``lr``.

    Args:
        name: ``sgd``, ``adam``, ``adagrad`` or ``adamw``.
        parameters: The tensors to train.
        lr: Learning rate.
        member_lrs: One rate per member of stacked ensemble weights (see ``Optimizer``).

    Raises:
        ValueError: If ``name`` is not a known optimizer.
    """
    return Optimizer(name, parameters, lr, member_lrs)
