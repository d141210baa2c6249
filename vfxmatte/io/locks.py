"""Per-output-file locks, so that two runs writing the same output never write the same frame at once.

A farm may start two runs on one shot (a retried chunk next to a slow original, an artist
resubmitting from Nuke while the first run still goes).  Each frame's output is guarded by an
exclusive advisory lock on a hidden lock file beside it (``.plate.1001.exr.lock``), held from the
moment the frame is matted until its EXR is renamed into place.  A run that finds the lock taken
waits, then looks at the output again: a frame the other run wrote with the same parameters is
skipped, not matted twice.

The lock is ``flock(2)``: the kernel drops it when its process dies, even by SIGKILL, so a crashed
run never leaves a frame locked.  (On NFS, Linux maps ``flock`` onto NFS byte-range locks, which
NFSv4 servers honour across clients.)  The lock file holds ``pid host`` of its holder for
messages; the holder unlinks it on release, and a waiter that locked a file unlinked under it
tries again, so a lock file never outlives its run.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import time
from collections.abc import Iterator

from vfxmatte.errors import OutputError

POLL_SECONDS = 0.2


def lock_path(path: str) -> str:
    """The hidden lock file guarding ``path``."""
    directory, name = os.path.split(os.path.abspath(path))
    return os.path.join(directory, f".{name}.lock")


class FrameLock:
    """An exclusive lock on one output file (a frame, or a movie written whole)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.lock_path = lock_path(path)
        self._fd: int | None = None

    def acquire(self, timeout: float = 0.0) -> bool:
        """Take the lock, waiting up to ``timeout`` seconds; False when another process still holds it."""
        deadline = time.monotonic() + max(timeout, 0.0)
        while True:
            if self._try():
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(POLL_SECONDS)

    def holder(self) -> str:
        """``pid N on HOST`` of the process holding the lock, as far as its lock file says."""
        try:
            with open(self.lock_path, encoding="utf-8", errors="replace") as handle:
                pid, _, host = handle.read(200).strip().partition(" ")
        except OSError:
            return "another process"
        return f"pid {pid} on {host}" if pid.isdigit() and host else "another process"

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        if sys.platform != "win32":
            # Unlink while still holding it: a waiter that then locks the unlinked file notices
            # (its inode no longer matches the path) and tries again on a fresh one.
            with contextlib.suppress(OSError):
                os.unlink(self.lock_path)
        _unlock(fd)
        os.close(fd)

    def _try(self) -> bool:
        try:
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as exc:
            raise OutputError(f"{self.path}: cannot create its lock file: {exc.strerror}") from exc
        if not _lock(fd):
            os.close(fd)
            return False
        try:
            current = os.stat(self.lock_path)
        except FileNotFoundError:
            current = None
        if current is None or current.st_ino != os.fstat(fd).st_ino:
            _unlock(fd)  # the previous holder unlinked it between our open and our lock
            os.close(fd)
            return self._try()
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()} {socket.gethostname()}\n".encode())
        self._fd = fd
        return True


if sys.platform == "win32":  # pragma: no cover - exercised on Windows workstations only
    import msvcrt

    def _lock(fd: int) -> bool:
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True

    def _unlock(fd: int) -> None:
        with contextlib.suppress(OSError):
            os.lseek(fd, 0, os.SEEK_SET)
            msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)

else:
    import fcntl

    def _lock(fd: int) -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def _unlock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)


@contextlib.contextmanager
def free_lock(path: str) -> Iterator[bool]:
    """Try ``path``'s lock without waiting; yield whether this process got it (released on exit)."""
    lock = FrameLock(path)
    try:
        yield lock.acquire(0.0)
    finally:
        lock.release()
