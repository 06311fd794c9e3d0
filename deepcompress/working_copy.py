"""A deep copy of the user's model that the run may change: :func:`working_copy`."""

from __future__ import annotations

import copy
from typing import Any


def working_copy(model: Any) -> Any:
    """A deep copy of ``model`` that leaves it as it is. Tensors a forward pre-hook computed and left on a
    module (``torch.nn.utils.prune``'s ``weight``, the older ``weight_norm``'s), which ``copy.deepcopy``
    refuses while they are part of an autograd graph, are copied detached: the hooks compute them again."""
    import torch

    memo: dict[int, Any] = {}
    for module in model.modules():
        for value in vars(module).values():
            if isinstance(value, torch.Tensor) and not value.is_leaf:
                memo[id(value)] = value.detach().clone()
    return copy.deepcopy(model, memo)
