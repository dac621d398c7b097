"""Write a file all at once or not at all, without following anything planted next to it.

    with atomic_write("labels.csv", newline="") as f:
        f.write(...)

The data goes to a new temporary file in the target's folder, created with O_EXCL by :mod:`tempfile` (so a
planted ``<out>.partial`` symlink, or any other file, is never opened or followed), and is renamed over the
target with ``os.replace`` only when everything was written. A failure leaves the target as it was and no
temporary file behind. An OSError (unwritable folder, missing folder, disk full) becomes one ConfigError naming
the path and the option to change.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import IO, Iterator

from relabel.errors import ConfigError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, *, what: str = "the file", option: str = "--out",
                 encoding: str = "utf-8", newline: str | None = None) -> Iterator[IO[str]]:
    """A text file object whose content replaces ``path`` when the block ends without an error."""
    target = Path(path)
    tmp_name = None
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent or ".")
        # mkstemp makes the file 0600; a report or an export gets the mode any new file of the user would get.
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "w", encoding=encoding, newline=newline) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp_name, target)
        tmp_name = None
    except OSError as exc:
        raise ConfigError(f"Cannot write {what} to {str(target)!r} ({exc.strerror or exc}); check that its folder "
                          f"exists and is writable, or choose another {option}.") from None
    finally:
        if tmp_name is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp_name)
