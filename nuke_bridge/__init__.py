"""The Nuke side of vfxmatte: a standard-library Prefect client and the Nuke panel.

Nothing here imports torch, Prefect or vfxmatte: Nuke's bundled Python cannot install
them.  ``client`` talks to a Prefect server over its REST API; ``local`` runs the
``vfxmatte`` command as a background process when no server is configured; ``nuke/``
holds what ``NUKE_PATH`` points at (``init.py``, ``menu.py`` and the ``vfxmatte_nuke`` panel).
Python 3.9 or newer (Nuke 13+).
"""

__version__ = "0.1.0"
