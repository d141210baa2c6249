"""Confine paths that arrive over the network (flow parameters, Nuke submissions) to allowed roots.

A deployment lets anyone who can reach the Prefect API name an input and an output; without a
fence, "output: /etc/…" or "input: ../../home/…" would be honoured.  The roots come from
``VFXMATTE_ROOTS`` (``os.pathsep``-separated directories); when it is unset only the current
working directory is allowed.  A path is accepted when its fully resolved form (symlinks
followed, for a pattern the directory part) lies inside a resolved root; any ``..`` component
is refused outright, before resolution, so a path never depends on what a ``..`` happens to
cross.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from vfxmatte.errors import UsageError

ROOTS_ENV = "VFXMATTE_ROOTS"


def configured_roots(value: str | None = None) -> list[str]:
    """The allowed roots, resolved: ``value`` or ``$VFXMATTE_ROOTS``, else the working directory."""
    text = os.environ.get(ROOTS_ENV, "") if value is None else value
    roots = [item for item in text.split(os.pathsep) if item.strip()]
    if not roots:
        roots = [os.getcwd()]
    resolved: list[str] = []
    for root in roots:
        if not os.path.isabs(root):
            raise UsageError(f"{ROOTS_ENV}: root {root!r} is not an absolute path")
        resolved.append(os.path.realpath(root))
    return resolved


def _resolve(path: str) -> str:
    """Resolve symlinks of ``path``; a pattern or a file still to be written resolves by its directory."""
    directory, name = os.path.split(os.path.abspath(path))
    if os.path.lexists(path) and not any(token in name for token in ("#", "%", "@")):
        return os.path.realpath(path)
    return os.path.join(os.path.realpath(directory), name)


def confine(path: str, what: str = "path", roots: Sequence[str] | None = None) -> str:
    """Return ``path`` made absolute if it lies inside one of ``roots``; raise :class:`UsageError` if not.

    ``what`` names the parameter in the message ("input", "output", "guide").
    """
    if not path or "\x00" in path:
        raise UsageError(f"{what} {path!r}: empty or contains a NUL byte")
    if ".." in path.replace("\\", "/").split("/"):
        raise UsageError(f"{what} {path}: '..' components are not allowed")
    allowed = list(roots) if roots is not None else configured_roots()
    allowed = [os.path.realpath(root) for root in allowed]
    resolved = _resolve(path)
    for root in allowed:
        if resolved == root or resolved.startswith(root.rstrip(os.sep) + os.sep):
            # Keep a trailing separator: "out/" means "a directory" to the output resolver.
            return os.path.abspath(path) + (os.sep if path.endswith(("/", os.sep)) else "")
    raise UsageError(f"{what} {path}: outside the allowed roots ({os.pathsep.join(allowed)}); set {ROOTS_ENV}")
