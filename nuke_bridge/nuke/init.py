"""vfxmatte for Nuke: put this folder on NUKE_PATH (see docs/NUKE.md).

Like Cryptomatte's, this file only makes the code importable; the logic lives in the
``vfxmatte_nuke`` package next to it, which tests import without Nuke.
"""

import vfxmatte_nuke  # noqa: F401  (puts the nuke_bridge package on sys.path)
