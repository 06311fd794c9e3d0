"""Knowledge distillation from the uncompressed model (Hinton, Vinyals, Dean 2015).

Retraining a pruned or weight-shared model on data that differs from what the
original saw (CIFAR-10's JPEG training images, for instance) pulls it towards
the new data. Training it to match the uncompressed model's outputs on the same
inputs instead keeps it close to the function that was compressed. The loss is

    (1 - w) * CE(student, labels) + w * T^2 * KL(softmax(teacher / T) || softmax(student / T))

with weight ``w`` in [0, 1] and temperature ``T``; ``w = 1`` ignores the labels.
The teacher is a frozen copy of the input model in eval mode.
"""

from __future__ import annotations

from typing import Any

from .errors import ConfigError


def frozen_copy(model: Any) -> Any:
    """A copy of ``model`` in eval mode with no gradients: the teacher."""
    from .working_copy import working_copy

    teacher = working_copy(model)
    teacher.eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    return teacher


def distill_loss(student_logits: Any, teacher_logits: Any, targets: Any, weight: float, temperature: float) -> Any:
    """The weighted sum of cross-entropy on the labels and the temperature-scaled KL to the teacher."""
    import torch.nn.functional as F

    if not 0.0 <= weight <= 1.0:
        raise ConfigError(f"distill weight must be in [0, 1]; got {weight}")
    if not temperature > 0:
        raise ConfigError(f"distill temperature must be > 0; got {temperature}")
    t = float(temperature)
    soft = F.kl_div(F.log_softmax(student_logits / t, dim=1), F.log_softmax(teacher_logits / t, dim=1),
                    reduction="batchmean", log_target=True) * (t * t)
    if weight >= 1.0:
        return soft
    return (1.0 - weight) * F.cross_entropy(student_logits, targets) + weight * soft


def distill_one_epoch(model: Any, teacher: Any, loader: Any, optimizer: Any, *, weight: float, temperature: float,
                      desc: str = "train", progress: bool = True, shift: int = 0) -> dict[str, float]:
    """One pass over ``loader`` training ``model`` towards ``teacher``; mean loss and training accuracy.

    The epoch is :func:`deepcompress.training.train_one_epoch` (thread-invariant) with
    :func:`distill_loss` in place of cross-entropy; with ``shift`` both see the same shifted images.
    """
    import torch

    from .training import _flat, as_model_input, train_one_epoch

    if teacher is None:
        raise ConfigError("distillation needs a teacher (the input model); none was given")
    teacher.eval()

    def loss_fn(inputs: Any, raw_targets: Any, logits: Any, targets: Any) -> Any:
        with torch.no_grad():
            teacher_logits, _ = _flat(teacher(as_model_input(teacher, inputs)), raw_targets)  # a sequence model's (B, T, C): B*T predictions
        return distill_loss(logits, teacher_logits, targets, weight, temperature)

    return train_one_epoch(model, loader, optimizer, desc=desc, progress=progress, loss_fn=loss_fn, shift=shift)
