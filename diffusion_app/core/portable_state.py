"""What an object sends when it is pickled to another process, such as a run coming back from a Ray Serve
replica (service/ray_serving.py): its attributes without the models, threads and locks that stay where it ran,
and its tensors on the CPU, since the receiving process may have no GPU."""

from __future__ import annotations

import torch


def portable_state(obj, kept_here: tuple[str, ...] = ()) -> dict:
    """`obj`'s attributes for `__getstate__`: all but those named in kept_here, tensors moved to the CPU."""
    return {name: value.cpu() if isinstance(value, torch.Tensor) else value
            for name, value in vars(obj).items() if name not in kept_here}
