"""The Nuke panel of vfxmatte; ``panel`` needs the ``nuke`` module, nothing else here does."""

from __future__ import annotations

import os
import sys


def _bootstrap() -> None:
    """Make ``nuke_bridge`` importable when only ``nuke_bridge/nuke`` is on NUKE_PATH."""
    try:
        import nuke_bridge  # noqa: F401
    except ImportError:
        # vfxmatte_nuke/ → nuke/ → nuke_bridge/ → the folder that holds nuke_bridge/
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
        if root not in sys.path:
            sys.path.append(root)


_bootstrap()
