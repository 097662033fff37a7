"""Import open_clip where torchvision's compiled operators cannot load.

open_clip needs only torchvision's pure-Python transforms. On a CPU-only PyTorch with a CUDA build of
torchvision (PyPI has no CPU torchvision wheel), `import torchvision` fails while registering its
compiled detection operators (nms, roi_align, ...). In that case torchvision is imported again without
those registrations, which open_clip never calls. Where torchvision imports normally nothing changes.
"""

from __future__ import annotations

import importlib
import sys
import types

_OPERATOR_REGISTRATIONS = ("torchvision._meta_registrations", "torchvision._autograd_registrations")


def _import_torchvision_without_operators() -> None:
    for name in [name for name in sys.modules if name == "torchvision" or name.startswith("torchvision.")]:
        del sys.modules[name]
    for name in _OPERATOR_REGISTRATIONS:
        sys.modules[name] = types.ModuleType(name)
    importlib.import_module("torchvision")


def import_open_clip() -> types.ModuleType:
    """Return the open_clip module, importing torchvision without its compiled operators if needed."""
    try:
        importlib.import_module("torchvision")
    except (RuntimeError, OSError):
        _import_torchvision_without_operators()
    return importlib.import_module("open_clip")
