"""Make torchvision importable where its compiled operators cannot load.

On a CPU-only PyTorch with a CUDA build of torchvision (PyPI has no CPU torchvision wheel), `import
torchvision` fails while registering its compiled detection operators (nms, roi_align, ...), and with it
every library that imports torchvision when it is installed (transformers, so diffusers; open_clip). Those
libraries use only torchvision's pure-Python parts, so torchvision is then imported without the operator
registrations. Where torchvision imports normally, or is not installed, nothing changes.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types

_OPERATOR_REGISTRATIONS = ("torchvision._meta_registrations", "torchvision._autograd_registrations")


def ensure_torchvision_importable() -> None:
    if importlib.util.find_spec("torchvision") is None:
        return
    try:
        importlib.import_module("torchvision")
    except (RuntimeError, OSError):
        for name in [name for name in sys.modules if name == "torchvision" or name.startswith("torchvision.")]:
            del sys.modules[name]
        for name in _OPERATOR_REGISTRATIONS:
            sys.modules[name] = types.ModuleType(name)
        importlib.import_module("torchvision")
