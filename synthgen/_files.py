"""Atomic file publication shared by the model and table writers."""
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
