"""Writing what the project generates so that a crash, a full disk or a read-only folder never breaks it.

Two tools, used by every layer that persists something:

- :func:`write_atomic` writes one file (bytes, text, or whatever a ``write(tmp_path)``
  callback produces, such as a matplotlib figure) to a temporary name beside the
  target, flushes it to disk, and renames it over the target. A reader sees the old
  file or the new one, never half of one.
- :class:`VersionedStore` keeps artifacts made of several files (the search index,
  the knowledge graph) as complete version folders plus a ``CURRENT`` pointer::

      <store>/CURRENT          the name of the live version, switched with one rename
      <store>/v<time>-<pid>/   a complete version
      <store>/.v....partial/   a version being written (or left by a killed build)
      <store>/.lock            one writer at a time

  A new version is written into a ``.partial`` folder, synced, renamed, and only then
  does ``CURRENT`` move to it, so the previous good version stays in use until the
  new one is complete. A ``.partial`` folder found while holding the lock was left by a
  build that was killed: it is removed and reported.

``CURRENT`` also holds the SHA-256 of the version's ``manifest.json``, and the
manifest holds the SHA-256 of every other file, so a flipped byte anywhere is
caught (:meth:`VersionedStore.read_manifest`).

A write that fails (no space left, permission denied, read-only file system) raises
:class:`StorageError`, a one-line message naming the folder and the reason; the
temporary files are removed and what was there before is untouched.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path

Writer = Callable[[Path], None]


def file_sha256(path: Path) -> str:
    """The SHA-256 of a file's bytes, read in 1 MiB blocks (manifests record it for every artifact)."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class CorruptArtifact(RuntimeError):
    """A stored artifact that fails its checks (missing file, bad checksum, unreadable manifest)."""


class StorageError(ValueError):
    """Something could not be written; the message names the path and the operating system's reason."""


def storage_error(path: Path, exc: OSError, kept: str = "") -> StorageError:
    reason = exc.strerror or str(exc)
    if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        reason += " (is MATHRAG_HOME writable?)"
    elif exc.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT):
        reason += " (the disk is full or a size limit was reached)"
    return StorageError(f"cannot write {path}: {reason}{'; ' + kept if kept else ''}")


def _fsync(path: Path) -> None:
    with path.open("rb") as f:
        os.fsync(f.fileno())


def write_atomic(path: Path, data: bytes | str | Writer) -> Path:
    """Write ``path`` all at once: to a temporary name, synced, then renamed over the old file."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}{path.suffix}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(data, bytes):
            tmp.write_bytes(data)
        elif isinstance(data, str):
            tmp.write_text(data, encoding="utf-8")
        else:
            data(tmp)
        _fsync(tmp)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise storage_error(path, exc, kept="the previous file is unchanged") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def save_png(fig, path: Path, dpi: int | None = None) -> Path:
    """Write a matplotlib figure to ``path`` as PNG, all at once (:func:`write_atomic`)."""
    return write_atomic(path, lambda tmp: fig.savefig(tmp, format="png", dpi=dpi or fig.dpi))


@contextlib.contextmanager
def staged_folder(target: Path) -> Iterator[Path]:
    """A fresh folder beside ``target`` to write a whole artifact into (a model, an adapter). When the block
    ends normally it replaces ``target`` by two renames, the old folder put back if the second fails; when
    the block raises, it is removed and ``target`` is left as it was."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.partial-{os.getpid()}-{time.monotonic_ns()}")
    tmp.mkdir()
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = target.with_name(f".{target.name}.old-{os.getpid()}-{time.monotonic_ns()}")
    if target.exists():
        os.replace(target, old)
    try:
        os.replace(tmp, target)
    except BaseException:
        if old.exists() and not target.exists():
            os.replace(old, target)
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(old, ignore_errors=True)


class VersionedStore:
    """Complete version folders under ``root`` and a ``CURRENT`` pointer to the live one."""

    def __init__(self, root: Path, what: str = "artifact"):
        self.root = Path(root)
        self.what = what  # for messages: "index", "graph"

    # ---- reading

    def _pointer(self) -> tuple[str, str] | None:
        try:
            words = (self.root / "CURRENT").read_text(encoding="utf-8", errors="replace").split()
        except (FileNotFoundError, NotADirectoryError):
            return None
        return (words[0], words[1] if len(words) > 1 else "") if words else ("", "")

    def current(self) -> Path | None:
        """The live version folder, or None when there is none yet."""
        pointer = self._pointer()
        return None if pointer is None else self.root / (pointer[0] or "CURRENT-is-empty")

    def read_manifest(self, folder: Path, error: type[Exception] = CorruptArtifact) -> dict:
        """The version's manifest, checked against the digest ``CURRENT`` holds; ``error`` if anything is off."""
        path = folder / "manifest.json"
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise error(f"{path} is unreadable ({exc.strerror or exc.__class__.__name__})") from None
        pointer = self._pointer()
        if pointer and pointer[0] == folder.name and pointer[1] and hashlib.sha256(data).hexdigest() != pointer[1]:
            raise error(f"{path} does not match its checksum in {self.root / 'CURRENT'}")
        try:
            manifest = json.loads(data)
        except ValueError:
            raise error(f"{path} is not valid JSON") from None
        if not isinstance(manifest, dict):
            raise error(f"{path} is not a JSON object")
        return manifest

    def partials(self) -> list[Path]:
        if not self.root.is_dir():
            return []
        return sorted(p for p in self.root.iterdir() if p.is_dir() and p.name.endswith(".partial"))

    # ---- writing

    def writable(self) -> bool:
        """Whether a new version could be written here (the folder exists or can be made, and takes files)."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError:
            return False
        return os.access(self.root, os.W_OK) and not _read_only_fs(self.root)

    @contextlib.contextmanager
    def locked(self, wait: bool = True) -> Iterator[bool]:
        """Hold the store's write lock; with ``wait=False`` yield False at once if another process holds it."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            f = (self.root / ".lock").open("a")
        except OSError as exc:
            raise storage_error(self.root, exc, kept=f"the stored {self.what} is unchanged") from None
        with f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def remove_partials(self) -> list[str]:
        """Remove folders left by killed builds (call while holding the lock); returns their names."""
        removed = []
        for p in self.partials():
            shutil.rmtree(p, ignore_errors=True)
            removed.append(p.name)
        return removed

    @contextlib.contextmanager
    def new_version(self) -> Iterator[Path]:
        """Yield an empty folder to fill; on success it becomes the live version, on failure it is removed."""
        name = f"v{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}-{time.monotonic_ns() % 10**6:06d}"
        tmp = self.root / f".{name}.partial"
        kept = f"the previous {self.what} is still in use" if self.current() else f"no {self.what} was written"
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            tmp.mkdir()
            yield tmp
            for p in tmp.rglob("*"):
                if p.is_file():
                    _fsync(p)
            manifest = tmp / "manifest.json"
            digest = hashlib.sha256(manifest.read_bytes()).hexdigest() if manifest.is_file() else ""
            final = self.root / name
            os.replace(tmp, final)
            write_atomic(self.root / "CURRENT", f"{name} {digest}".strip() + "\n")
        except OSError as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            raise storage_error(self.root, exc, kept=kept) from None
        except StorageError as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            raise StorageError(f"{exc}; {kept}") from None
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        self._remove_old(keep=name)

    def _remove_old(self, keep: str) -> None:
        for p in self.root.iterdir():
            if p.is_dir() and p.name != keep and p.name.startswith("v"):
                shutil.rmtree(p, ignore_errors=True)


def _read_only_fs(path: Path) -> bool:
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        return False
