"""Safe outputs, shared by every writer: never over an input, checked before the work, published atomically.

An output is written to a hidden ``.NAME.*.partial`` file (or folder) beside its target, flushed to
disk, and renamed onto the target only when complete; any error or interruption removes it. The
CLI turns SIGTERM into an exception while it runs, so a killed run cleans up as an interrupted one.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from synthgen.errors import OutputError, SynthgenError

PARTIAL = ".partial"
#: Set by the CLI's SIGINT/SIGTERM handlers. Their exception normally stops the work at once, but one
#: raised while Python runs a callback from C code is printed and dropped; writers check this
#: between chunks so such a signal still stops them (CI saw Ctrl-C leave a sample running to the end).
INTERRUPTED = threading.Event()


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


def publish(temporary: Path, target: Path) -> None:
    """Give ``temporary`` the permissions a normal new file would get, then rename it onto ``target``.

    ``tempfile.mkstemp`` creates files readable by the owner only; outputs should follow the umask.
    """
    os.chmod(temporary, 0o666 & ~_umask())
    os.replace(temporary, target)


def publish_directory(temporary: Path, target: Path) -> None:
    """Give the directory ``temporary`` normal permissions, then rename it onto ``target``.

    ``target`` must be absent or an empty directory (rename replaces an empty directory atomically
    and refuses a non-empty one). ``tempfile.mkdtemp`` creates directories for the owner only.
    """
    os.chmod(temporary, 0o777 & ~_umask())
    os.replace(temporary, target)


def same_file(a: str | Path, b: str | Path) -> bool:
    """Whether two paths name one file: the same resolved path, or (links) the same inode."""
    a, b = Path(a), Path(b)
    if a.resolve() == b.resolve():
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist
        return False


def describe_error(exc: OSError) -> str:
    """An OSError's reason in a few words, without the path (callers name it)."""
    return exc.strerror or str(exc) or type(exc).__name__


def _existing_ancestor(folder: Path) -> Path:
    """The nearest folder that exists at or above ``folder``; a file in the way is an error."""
    for candidate in (folder, *folder.parents):
        if candidate.exists():
            if not candidate.is_dir():
                raise OutputError(f"cannot write under {str(folder)!r}: {str(candidate)!r} is a file, not a folder")
            return candidate
    return Path(".")


def check_output(path: str | Path, *, inputs: Iterable[str | Path | None] = (), option: str = "-o",
                 directory: bool = False) -> Path:
    """Refuse, before any work is done, an output that could not or must not be written.

    The output may not be one of ``inputs`` (resolved paths and inodes are compared, so links are
    caught), may not be an existing directory (``directory=True``: may not be an existing file or a
    non-empty directory), and its folder, or the nearest existing folder above it, must accept a
    new file: that is probed by creating and removing an empty one, which also works for root and
    read-only mounts, where permission bits say nothing. Missing folders are created when writing.
    """
    path = Path(path)
    for source in inputs:
        if source is not None and same_file(path, source):
            raise OutputError(f"{option} {str(path)!r} is the input {str(source)!r}; synthgen never writes over its "
                              "input, choose another output path")
    if not directory and path.is_dir():
        raise OutputError(f"{option} {str(path)!r} is a directory; give a file name")
    if directory and path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise OutputError(f"{option} {str(path)!r} already exists and is not an empty directory; choose a new folder")
    folder = _existing_ancestor(path.parent)
    try:
        handle, probe = tempfile.mkstemp(prefix=f".{path.name}.", suffix=PARTIAL, dir=folder)
        os.close(handle)
        os.unlink(probe)
    except OSError as exc:
        raise OutputError(f"cannot write {str(path)!r}: folder {str(folder)!r} refuses new files "
                          f"({describe_error(exc)})") from exc
    return path


def _make_parent(path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create the folder of {str(path)!r}: {describe_error(exc)}") from exc


@contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """A temporary path beside ``target`` to write into; renamed onto ``target`` when the block succeeds.

    The block writes the temporary file by name (pandas, pyarrow, torch). On success it is flushed
    to disk before the rename, so a crash never publishes a truncated file; on any error or
    interruption it is removed. OS errors (full disk, permissions, a directory in the way) become an
    :class:`OutputError` naming ``target``.
    """
    target = Path(target)
    if target.is_dir():
        raise OutputError(f"{str(target)!r} is a directory; give a file name")
    _make_parent(target)
    try:
        handle, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=PARTIAL, dir=target.parent)
    except OSError as exc:
        raise OutputError(f"cannot write {str(target)!r}: {describe_error(exc)}") from exc
    os.close(handle)
    temporary = Path(name)
    try:
        yield temporary
        _flush(temporary)
        publish(temporary, target)
    except OSError as exc:
        temporary.unlink(missing_ok=True)
        if isinstance(exc, SynthgenError):  # already says what went wrong
            raise
        raise OutputError(f"cannot write {str(target)!r}: {describe_error(exc)}") from exc
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def _flush(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def write_atomic(target: str | Path, content: str | bytes) -> Path:
    """Write ``content`` (text as UTF-8) to ``target`` atomically; see :func:`atomic_path`."""
    data = content.encode("utf-8") if isinstance(content, str) else content
    with atomic_path(target) as temporary:
        temporary.write_bytes(data)
    return Path(target)


@contextmanager
def atomic_directory(target: str | Path) -> Iterator[Path]:
    """A hidden staging folder beside ``target``, renamed onto it when the block succeeds (see :func:`atomic_path`)."""
    target = Path(target)
    _make_parent(target)
    try:
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=PARTIAL, dir=target.parent))
    except OSError as exc:
        raise OutputError(f"cannot write {str(target)!r}: {describe_error(exc)}") from exc
    try:
        yield staging
        publish_directory(staging, target)
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        if isinstance(exc, SynthgenError):
            raise
        raise OutputError(f"cannot write {str(target)!r}: {describe_error(exc)}") from exc
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
