"""Logging for scripts: everything a rule does goes to its `log:` file."""

from __future__ import annotations

import contextlib
import logging
import sys
import warnings
from pathlib import Path
from typing import Iterator

from daml.errors import DamlError

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


@contextlib.contextmanager
def to_file(path: str | Path, level: int = logging.INFO) -> Iterator[logging.Logger]:
    """Send logging (and warnings) to `path` and to stderr for the duration of the block.

    A `DamlError` is logged as one line naming what to fix and leaves the process with
    exit status 1; any other exception is logged with its traceback and re-raised.
    """
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    handlers = [logging.FileHandler(path, mode="w"), logging.StreamHandler(sys.stderr)]
    for handler in handlers:
        handler.setFormatter(logging.Formatter(FORMAT))
    root = logging.getLogger()
    previous = root.level
    root.setLevel(level)
    for handler in handlers:
        root.addHandler(handler)
    logging.captureWarnings(True)
    warnings.simplefilter("default")
    log = logging.getLogger("daml")
    try:
        yield log
    except DamlError as error:
        log.error("%s", error)
        raise SystemExit(1) from None
    except BaseException:
        log.exception("unexpected failure")
        raise
    finally:
        for handler in handlers:
            root.removeHandler(handler)
            handler.close()
        root.setLevel(previous)
        logging.captureWarnings(False)
