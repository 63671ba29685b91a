"""Atomic publication of output files and directories, shared by the model, table and image writers."""
from __future__ import annotations

import os
from pathlib import Path


def publish(temporary: Path, target: Path) -> None:
    """Give ``temporary`` the permissions a normal new file would get, then rename it onto ``target``.

    ``tempfile.mkstemp`` creates files readable by the owner only; outputs should follow the umask.
    """
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(temporary, 0o666 & ~umask)
    os.replace(temporary, target)


def publish_directory(temporary: Path, target: Path) -> None:
    """Give the directory ``temporary`` normal permissions, then rename it onto ``target``.

    ``target`` must be absent or an empty directory (rename replaces an empty directory atomically
    and refuses a non-empty one). ``tempfile.mkdtemp`` creates directories for the owner only.
    """
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(temporary, 0o777 & ~umask)
    os.replace(temporary, target)
