"""Confine paths that arrive over the network (flow parameters, Nuke submissions) to allowed roots.

A deployment lets anyone who can reach the Prefect API name an input and an output; without a
fence, "output: /etc/…" or "input: ../../home/…" would be honoured.  The roots come from
``VFXMATTE_ROOTS`` (``os.pathsep``-separated directories); when it is unset only the current
working directory is allowed.  A path is accepted when its fully resolved form (symlinks
followed, for a pattern the directory part) lies inside a resolved root; any ``..`` component
is refused outright, before resolution, so a path never depends on what a ``..`` happens to
cross.  For a frame pattern every file of the sequence already on disk is checked too, so a
``plate.1001.exr`` that is a symlink to a file outside the roots is refused like a symlinked
folder.  Empty strings, NUL and other control characters and paths longer than
:data:`MAX_PATH_LENGTH` are refused before anything touches the file system.

Paths typed on this machine's own command line are the user's own: ``vfxmatte flow run`` runs
its flow inside :func:`local_paths`, where :func:`confine` only makes a path absolute (after the
same text checks).  The flag is a context variable of the running process, so nothing that
arrives over the network (deployment parameters, REST-created runs, the Nuke bridge's farm
submissions, all executed by a worker) can set it.

Model folders have their own allow-list (:func:`confine_model`): the bundled model plus the
folders of ``VFXMATTE_MODEL_ROOTS``.  The checks happen when a request arrives; whoever can
write inside the roots could still swap a file for a symlink afterwards, so the roots must be
folders only trusted users write to.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path

from vfxmatte.errors import InputError, UsageError

ROOTS_ENV = "VFXMATTE_ROOTS"
MODEL_ROOTS_ENV = "VFXMATTE_MODEL_ROOTS"
#: Longest path accepted from a request (Linux's PATH_MAX).
MAX_PATH_LENGTH = 4096
#: The model shipped inside the package: always allowed.
BUNDLED_MODEL_DIR = Path(__file__).resolve().parent / "model" / "default"
_FRAME_TOKENS = ("#", "%", "@")
_LOCAL_PATHS: ContextVar[bool] = ContextVar("vfxmatte_local_paths", default=False)


@contextmanager
def local_paths() -> Iterator[None]:
    """Within this block :func:`confine` accepts any path: for paths the user typed on this machine.

    Only a local command line enters it (``vfxmatte flow run``, ``python -m flows.matte_shot``);
    a worker running a deployment's flow never does, so ``VFXMATTE_ROOTS`` still confines those.
    """
    token = _LOCAL_PATHS.set(True)
    try:
        yield
    finally:
        _LOCAL_PATHS.reset(token)


def paths_are_local() -> bool:
    """True inside :func:`local_paths`."""
    return _LOCAL_PATHS.get()


def _split_roots(text: str, variable: str) -> list[str]:
    roots = [item for item in text.split(os.pathsep) if item.strip()]
    for root in roots:
        if not os.path.isabs(root):
            raise UsageError(f"{variable}: root {root!r} is not an absolute path")
    return [os.path.realpath(root) for root in roots]


def configured_roots(value: str | None = None) -> list[str]:
    """The allowed roots, resolved: ``value`` or ``$VFXMATTE_ROOTS``, else the working directory."""
    text = os.environ.get(ROOTS_ENV, "") if value is None else value
    return _split_roots(text, ROOTS_ENV) or [os.path.realpath(os.getcwd())]


def model_roots(value: str | None = None) -> list[str]:
    """Folders model folders may lie in: the bundled model, plus ``value`` or ``$VFXMATTE_MODEL_ROOTS``."""
    text = os.environ.get(MODEL_ROOTS_ENV, "") if value is None else value
    return [os.path.realpath(BUNDLED_MODEL_DIR), *_split_roots(text, MODEL_ROOTS_ENV)]


def check_text(value: str, what: str, limit: int = MAX_PATH_LENGTH) -> str:
    """Refuse an empty string, NUL or other control characters, or more than ``limit`` characters."""
    if not value:
        raise UsageError(f"{what}: empty")
    if len(value) > limit:
        raise UsageError(f"{what} {value[:60]!r}…: longer than {limit} characters")
    if any(ord(char) < 32 or ord(char) == 127 for char in value):
        raise UsageError(f"{what} {value[:200]!r}: contains a NUL or another control character")
    return value


def _check_request_path(path: str, what: str) -> None:
    """What every path from a request must pass before it touches the file system: text, no ``..``."""
    check_text(path, what)
    if ".." in path.replace("\\", "/").split("/"):
        raise UsageError(f"{what} {path}: '..' components are not allowed")


def _inside(resolved: str, roots: Sequence[str]) -> bool:
    return any(resolved == root or resolved.startswith(root.rstrip(os.sep) + os.sep) for root in roots)


def _resolve(path: str) -> str:
    """Resolve symlinks of ``path``; a pattern or a file still to be written resolves by its directory."""
    directory, name = os.path.split(os.path.abspath(path))
    if os.path.lexists(path) and not any(token in name for token in _FRAME_TOKENS):
        return os.path.realpath(path)
    return os.path.join(os.path.realpath(directory), name)


def _escaping_frame(pattern: str, roots: Sequence[str]) -> str | None:
    """The first file of the frame pattern ``pattern`` on disk that resolves outside ``roots`` (a symlink)."""
    from vfxmatte.io.sequence import FrameSequence

    name = os.path.basename(pattern)
    if not any(token in name for token in _FRAME_TOKENS):
        return None
    try:
        sequence = FrameSequence.parse(pattern)
        if sequence.is_single or not os.path.isdir(sequence.directory):
            return None
        frames = sequence.frames_on_disk()
    except (UsageError, InputError, OSError):
        return None  # not a pattern the readers understand: they will say so
    for frame in frames:
        path = sequence.path(frame)
        if os.path.islink(path) and not _inside(os.path.realpath(path), roots):
            return path
    return None


def confine(path: str, what: str = "path", roots: Sequence[str] | None = None) -> str:
    """Return ``path`` made absolute if it lies inside one of ``roots``; raise :class:`UsageError` if not.

    ``what`` names the parameter in the message ("input", "output", "guide").  Inside
    :func:`local_paths` any path that passes the text checks is accepted.
    """
    if _LOCAL_PATHS.get():
        check_text(path, what)
        return os.path.abspath(path) + (os.sep if path.endswith(("/", os.sep)) else "")
    _check_request_path(path, what)
    allowed = list(roots) if roots is not None else configured_roots()
    allowed = [os.path.realpath(root) for root in allowed]
    if not _inside(_resolve(path), allowed):
        raise UsageError(f"{what} {path}: outside the allowed roots ({os.pathsep.join(allowed)}); set {ROOTS_ENV}")
    escaping = _escaping_frame(path, allowed)
    if escaping is not None:
        raise UsageError(f"{what} {path}: {escaping} is a symlink to a file outside the allowed roots")
    # Keep a trailing separator: "out/" means "a directory" to the output resolver.
    return os.path.abspath(path) + (os.sep if path.endswith(("/", os.sep)) else "")


def confine_model(path: str | os.PathLike[str], what: str = "model", roots: Sequence[str] | None = None) -> str:
    """Return ``path`` made absolute if it is the bundled model or lies in ``$VFXMATTE_MODEL_ROOTS``.

    The same rules as :func:`confine` (no ``..``, symlinks resolved, bounded length); raise
    :class:`UsageError` naming ``what`` (e.g. ``VFXMATTE_MODEL``) otherwise.
    """
    text = os.fspath(path)
    _check_request_path(text, what)
    allowed = [os.path.realpath(root) for root in (roots if roots is not None else model_roots())]
    if not _inside(os.path.realpath(text), allowed):
        raise UsageError(
            f"{what} {text}: outside the allowed model folders ({os.pathsep.join(allowed)}); "
            f"add its parent folder to {MODEL_ROOTS_ENV}"
        )
    for directory, subdirs, names in os.walk(text):  # unet/, vae/… and their files: no symlink out
        for name in [*subdirs, *names]:
            entry = os.path.join(directory, name)
            if os.path.islink(entry) and not _inside(os.path.realpath(entry), allowed):
                raise UsageError(f"{what} {text}: {entry} is a symlink outside the allowed model folders")
    return os.path.abspath(text)
