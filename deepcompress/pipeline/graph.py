"""Validating a stage graph before anything runs."""

from __future__ import annotations

from collections.abc import Sequence

from ..errors import ConfigError, PipelineError
from .stages import StageConfig


def validate(stages: Sequence[StageConfig], *, has_data: bool) -> None:
    """Check order and inputs: every stage's needs are met, and the graph ends encoded.

    Raises :class:`PipelineError` naming the first offending stage, e.g.
    ``"stage 2 'encode' ... but 'quantize' (stage 3) comes after it"``.
    """
    if not stages:
        raise PipelineError("the pipeline has no stages")
    available = {"model"}
    produced_by: dict[str, int] = {}
    for i, stage in enumerate(stages, start=1):
        missing = stage.NEEDS - available
        if missing:
            need = ", ".join(sorted(missing))
            raise PipelineError(
                f"stage {i} '{stage.TYPE}' needs {need}, which no earlier stage provides "
                f"(add a {_provider(need)} stage before it)"
            )
        if stage.needs_data() and not has_data:
            if getattr(stage, "sparsity", None) == "auto":
                raise ConfigError(f"stage {i} '{stage.TYPE}': --sparsity auto needs --data to measure each layer's sensitivity")
            raise PipelineError(f"stage {i} '{stage.TYPE}' needs training data; pass --data SPEC")
        lost = stage.INVALIDATES & set(produced_by)
        if "encoded" in lost:
            raise PipelineError(
                f"stage {i} '{stage.TYPE}' comes after 'encode' (stage {produced_by['encoded']}); "
                "encode must be the last stage"
            )
        later = set().union(*(s.PROVIDES for s in stages[i:])) if i < len(stages) else set()
        if "codebooks" in lost and "codebooks" not in later:
            raise PipelineError(
                f"stage {i} '{stage.TYPE}' moves the weights off the shared values of 'quantize' "
                f"(stage {produced_by['codebooks']}); add a quantize stage after it"
            )
        available -= stage.INVALIDATES
        for key in lost:
            produced_by.pop(key, None)
        available |= stage.PROVIDES
        for key in stage.PROVIDES:
            produced_by[key] = i
    if "encoded" not in available:
        raise PipelineError("the pipeline must end with an 'encode' stage")
    types = [s.TYPE for s in stages]
    if types.count("encode") > 1:
        raise PipelineError("the pipeline has more than one 'encode' stage")


def _provider(need: str) -> str:
    return {"codebooks": "quantize", "masks": "prune", "encoded": "encode"}.get(need.split(",")[0], need)
