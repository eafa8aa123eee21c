"""Atomic file output: a killed job never leaves a file that looks complete.

Every writer in the package goes through `atomic_path`: it yields a temporary name in the
destination folder and renames it over the destination only when the block succeeds, with
the permissions a plain `open(path, "w")` would give under the user's umask (a temporary
file is created owner-only, and a rename keeps that). A job
killed inside the block leaves its hidden temporary behind; the next write of the same
destination removes it (`remove_stale`): Snakemake never runs two jobs for one output, so
a temporary of that destination that already exists belongs to a dead attempt.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

log = logging.getLogger(__name__)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success rename it to `path`.

    Arguments:
        path: the final destination; its folder is created.
        suffix: suffix of the temporary name (some writers, e.g. numpy or matplotlib,
            choose the format from it); defaults to the destination's suffix.

    On an exception the temporary file is removed and the destination is untouched.
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    suffix = suffix or final.suffix or ".tmp"
    # mkstemp's names: prefix, 8 characters of [a-z0-9_], suffix
    remove_stale(final, rf"\.{re.escape(final.name)}\.[a-z0-9_]{{8}}{re.escape(suffix)}")
    fd, tmp = tempfile.mkstemp(dir=final.parent, prefix=f".{final.name}.", suffix=suffix)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o666 & ~current_umask())
        os.replace(tmp_path, final)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_folder(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a new hidden folder beside `path`; on success it replaces `path` as a whole.

    The folder-output counterpart of `atomic_path`: on an exception the temporary folder is
    removed and `path` is untouched; a folder left by a killed attempt is removed first.
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(final, rf"\.{re.escape(final.name)}\.tmp\d+")
    tmp = final.parent / f".{final.name}.tmp{os.getpid()}"
    tmp.mkdir()
    try:
        yield tmp
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def current_umask() -> int:
    """The process's umask, read without changing it where the system allows."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)  # elsewhere: set and restore at once
    os.umask(mask)
    return mask


def remove_stale(final: Path, pattern: str) -> list[Path]:
    """Remove the files or folders beside `final` whose whole name matches `pattern`.

    For the temporaries of `final` that a killed attempt left; returns what was removed.
    """
    removed = []
    for entry in final.parent.iterdir():
        if re.fullmatch(pattern, entry.name):
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
            log.warning("%s: removed, left by a killed attempt at %s", entry, final.name)
            removed.append(entry)
    return removed


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write `text` to `path` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: str | os.PathLike, obj) -> None:
    """Write `obj` as indented JSON, atomically."""
    write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def write_csv(path: str | os.PathLike, frame) -> None:
    """Write a pandas DataFrame as CSV without its index, atomically."""
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)


def _json_default(value):
    # numpy scalars and paths show up in metrics and provenance records
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise TypeError(f"cannot write {type(value).__name__} as JSON")
