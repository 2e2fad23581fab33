"""Several independent copies of one architecture, trained at once.

K folds × R repeats of one configuration are the same network with different
weights and data. ``Ensemble`` holds their weights stacked along a leading
member axis (one ``(M, ...)`` tensor per parameter and buffer), so one
optimizer, one backward pass and one host synchronisation serve every member,
while each member keeps its own weights, BatchNorm statistics and optimizer
state. Optimizers act element-wise, so one Adam over stacked weights equals M
separate Adams, provided the loss is the sum of the members' own losses.

Two ways to run the members, same results within float tolerance:

- ``loop``: each member's forward is the model's own code on its own views of
  the stacked weights (``torch.func.functional_call``). On a CPU this is the
  fastest: per-member convolutions run on the channels-last kernels, which beat
  the grouped convolutions a vectorised map turns them into.
- ``vmap``: ``torch.func.vmap`` over the members, one kernel launch per layer for
  all of them. Meant for GPUs, where launches, not arithmetic, bound these small
  networks. Needs equal batch sizes for every member; dropout draws different
  masks per member.

Both run any model of the registry unchanged: a model only has to be an
``nn.Module`` whose parameters and buffers ``functional_call`` can replace.
"""

from __future__ import annotations

import copy
from typing import Literal, Mapping, Sequence

import torch
from torch import nn
from torch.func import functional_call, vmap

from pairsearch.models.blocks import ModelOutput

Engine = Literal["loop", "vmap"]
ENGINES: tuple[str, ...] = ("loop", "vmap")


class Ensemble(nn.Module):
    """M members of one architecture with stacked weights.

    Args:
        members: Freshly built models of one architecture, with the same parameter
            and buffer names and shapes; their current weights become the members'
            starting weights. They are not modified.
        engine: ``loop`` or ``vmap`` (see the module docstring).

    Raises:
        ValueError: If ``members`` is empty, the members differ in structure, or the
            engine is unknown.
    """

    def __init__(self, members: Sequence[nn.Module], engine: Engine = "loop") -> None:
        super().__init__()
        if not members:
            raise ValueError("an ensemble needs at least one member")
        shapes = _shapes(members[0])
        for index, member in enumerate(members[1:], start=1):
            if _shapes(member) != shapes:
                raise ValueError(f"member {index} differs in structure from member 0")
        self._stack(members[0], [_tensors(member) for member in members], engine)

    @classmethod
    def from_weights(cls, template: nn.Module, weights: Sequence[Mapping[str, torch.Tensor]],
                     engine: Engine = "loop") -> "Ensemble":
        """M members of ``template``'s architecture starting from ``weights``, without
        building M models: the same ensemble as ``Ensemble`` of M models holding them.

        Args:
            template: A model of the architecture (its own weights are not used).
            weights: One mapping per member of every parameter and buffer name of
                ``template`` to a tensor (``member_weights``, ``initial_weights``).
            engine: ``loop`` or ``vmap``.

        Raises:
            ValueError: If ``weights`` is empty or names other tensors or shapes than the
                template's, or the engine is unknown.
        """
        if not weights:
            raise ValueError("an ensemble needs at least one member")
        shapes = dict(_shapes(template))
        for index, member in enumerate(weights):
            if {name: tuple(t.shape) for name, t in member.items()} != shapes:
                raise ValueError(f"weights {index} differ from the template's tensors")
        ensemble = cls.__new__(cls)
        nn.Module.__init__(ensemble)
        ensemble._stack(template, weights, engine)
        return ensemble

    def _stack(self, template: nn.Module, weights: Sequence[Mapping[str, torch.Tensor]],
               engine: Engine) -> None:
        if engine not in ENGINES:
            raise ValueError(f"unknown engine {engine!r}; valid: {', '.join(ENGINES)}")
        self.engine = engine
        self.size = len(weights)
        self._param_names = [name for name, _ in template.named_parameters()]
        self._buffer_names = [name for name, _ in template.named_buffers()]
        self.weights = nn.ParameterList(
            nn.Parameter(torch.stack([member[name].detach() for member in weights]))
            for name in self._param_names)
        for slot, name in enumerate(self._buffer_names):
            self.register_buffer(f"buffer_{slot}",
                                 torch.stack([member[name] for member in weights]))
        # The template runs the members' forward code (functional_call swaps its tensors for a
        # member's while it runs); it is kept out of the module tree so nothing trains it.
        object.__setattr__(self, "_template", copy.deepcopy(template))

    def train(self, mode: bool = True) -> "Ensemble":
        super().train(mode)
        self._template.train(mode)
        return self

    def _apply(self, fn, recurse: bool = True):
        super()._apply(fn, recurse)
        self._template._apply(fn, recurse)  # e.g. .to(device) moves its constants too
        return self

    def _stacked_buffers(self) -> list[torch.Tensor]:
        return [getattr(self, f"buffer_{slot}") for slot in range(len(self._buffer_names))]

    def member_states(self) -> list[dict[str, torch.Tensor]]:
        """Each member's parameters and buffers as views of the stacked tensors.

        One ``unbind`` per parameter: its backward stacks the members' gradients in
        one go (indexing ``p[m]`` per member would scatter M full-size zero tensors).
        Buffers are plain views, so BatchNorm's in-place running-statistics update
        writes through. Call once per step.
        """
        params = [p.unbind(0) for p in self.weights]
        buffers = self._stacked_buffers()
        states = []
        for index in range(self.size):
            state = {name: views[index] for name, views in zip(self._param_names, params)}
            state.update({name: stacked[index]
                          for name, stacked in zip(self._buffer_names, buffers)})
            states.append(state)
        return states

    def run_member(self, state: dict[str, torch.Tensor], x: torch.Tensor) -> ModelOutput:
        """One member's forward pass, given its ``member_states()`` entry."""
        return functional_call(self._template, state, (x,), tie_weights=False)

    def forward(self, inputs: Sequence[torch.Tensor] | torch.Tensor) -> list[ModelOutput]:
        """Each member's output on its own inputs.

        Args:
            inputs: One batch per member (a list, sizes may differ with ``loop``) or one
                ``(M, B, ...)`` tensor.

        Returns:
            The members' outputs, in member order.
        """
        if len(inputs) != self.size:
            raise ValueError(f"expected {self.size} input batches, got {len(inputs)}")
        if self.engine == "vmap":
            return self._forward_vmap(inputs)
        return [self.run_member(state, x) for state, x in zip(self.member_states(), inputs)]

    def _forward_vmap(self, inputs: Sequence[torch.Tensor] | torch.Tensor) -> list[ModelOutput]:
        batch = inputs if isinstance(inputs, torch.Tensor) else torch.stack(list(inputs))
        params = dict(zip(self._param_names, self.weights))
        buffers = dict(zip(self._buffer_names, self._stacked_buffers()))
        def member(p, b, x):
            out = functional_call(self._template, (p, b), (x,), tie_weights=False)
            # vmap returns tensors only: absent outputs travel as empty tensors.
            return tuple(torch.empty(0, device=x.device) if t is None else t for t in out)

        stacked = vmap(member, randomness="different")(params, buffers, batch)
        outputs = []
        for index in range(self.size):
            fields = [t[index] if t.numel() else None for t in stacked]
            outputs.append(ModelOutput(*fields))
        return outputs

    def member_weights(self, index: int) -> dict[str, torch.Tensor]:
        """Member ``index``'s parameters and buffers by name (copies): what
        ``load_weights`` puts back into a fresh model to continue its training."""
        weights = {name: stacked[index].detach().clone()
                   for name, stacked in zip(self._param_names, self.weights)}
        weights.update({name: stacked[index].clone()
                        for name, stacked in zip(self._buffer_names, self._stacked_buffers())})
        return weights

    def member_views(self) -> list["MemberView"]:
        """Each member as a model that runs on the ensemble's own weights (no copies):
        what scoring needs, at a fraction of ``members``'s cost. A view sees the
        ensemble's weights as they are when it runs."""
        return [MemberView(self, index) for index in range(self.size)]

    def members(self) -> list[nn.Module]:
        """Each member as a plain model with its current weights (copies)."""
        params, buffers = list(self.weights), self._stacked_buffers()
        result = []
        with torch.no_grad():
            for index in range(self.size):
                model = copy.deepcopy(self._template)
                own = dict(model.named_parameters())
                for name, stacked in zip(self._param_names, params):
                    own[name].copy_(stacked[index])
                own_buffers = dict(model.named_buffers())
                for name, stacked in zip(self._buffer_names, buffers):
                    own_buffers[name].copy_(stacked[index])
                result.append(model)
        return result


class MemberView(nn.Module):
    """Member ``index`` of ``ensemble`` as a model: its forward runs the ensemble's template on
    the member's views of the stacked weights (``Ensemble.run_member``), as training does.

    Its train/eval mode is the template's, shared by every view of the ensemble: set it
    before each forward (``evaluation.training.predict`` does). In train mode BatchNorm's
    running statistics update the ensemble's stacked buffers.
    """

    def __init__(self, ensemble: Ensemble, index: int) -> None:
        super().__init__()
        object.__setattr__(self, "_ensemble", ensemble)  # not a submodule: no weights here
        self.index = index

    def train(self, mode: bool = True) -> "MemberView":
        self.training = mode
        self._ensemble._template.train(mode)
        return self

    def forward(self, x: torch.Tensor) -> ModelOutput:
        return self._ensemble.run_member(self._ensemble.member_states()[self.index], x)


def _tensors(model: nn.Module) -> dict[str, torch.Tensor]:
    """A model's parameters and buffers by name."""
    return {**dict(model.named_parameters()), **dict(model.named_buffers())}


def _shapes(model: nn.Module) -> list[tuple[str, tuple[int, ...]]]:
    tensors = list(model.named_parameters()) + list(model.named_buffers())
    return [(name, tuple(t.shape)) for name, t in tensors]


@torch.no_grad()
def load_weights(model: nn.Module, weights: dict[str, torch.Tensor]) -> None:
    """Copy ``weights`` (``Ensemble.member_weights``) into ``model``'s parameters and buffers.

    Raises:
        ValueError: If the names or shapes differ from the model's.
    """
    own = dict(model.named_parameters())
    own.update(dict(model.named_buffers()))
    if set(own) != set(weights):
        raise ValueError("the weights name other tensors than the model's")
    for name, tensor in own.items():
        if tuple(weights[name].shape) != tuple(tensor.shape):
            raise ValueError(f"{name}: shape {tuple(weights[name].shape)}, the model's "
                             f"{tuple(tensor.shape)}")
        tensor.copy_(weights[name])
