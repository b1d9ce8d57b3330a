"""Files, carefully: only regular files are opened, reads are capped, writes are atomic.

The command line never opens a FIFO (which would block) or a device such as
``/dev/zero`` (which never ends), and never leaves a file half-written.
"""

from __future__ import annotations

import contextlib
import os
import stat
from typing import IO, Any, AnyStr, Callable

from einderiv.cli.messages import CommandLineError

__all__ = ["file_kind", "open_regular", "read_capped", "decode", "write_atomically"]


def file_kind(mode: int) -> str:
    """What a non-regular file is, in words.

    >>> file_kind(stat.S_IFIFO)
    'a FIFO (named pipe)'
    """
    kinds = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
             (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))
    return next((kind for test, kind in kinds if test(mode)), "not a regular file")


def open_regular(path: str, subject: str) -> tuple[IO[bytes], int]:
    """``path`` opened for binary reading and its size, after checking it is a regular file.

    ``os.stat`` comes first, so a FIFO (which would block) or a device such as
    ``/dev/zero`` (which never ends) is refused without being opened; the open
    itself never blocks, and the opened file is checked again.
    """
    def refuse(mode: int) -> CommandLineError:
        return CommandLineError(f"cannot read {subject}: it is {file_kind(mode)}, not a regular file")

    try:
        info = os.stat(path)
        if not stat.S_ISREG(info.st_mode):
            raise refuse(info.st_mode)
        descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as error:
        raise CommandLineError(f"cannot read {subject}: {error.strerror or error}") from None
    handle = os.fdopen(descriptor, "rb")
    info = os.fstat(descriptor)
    if not stat.S_ISREG(info.st_mode):          # replaced between stat and open
        handle.close()
        raise refuse(info.st_mode)
    return handle, info.st_size


def read_capped(handle: IO[AnyStr], limit: int, too_long: Callable[[], CommandLineError]) -> AnyStr:
    """At most ``limit`` bytes (or characters) of ``handle``; more is an error."""
    try:
        data = handle.read(limit + 1)
    except OSError as error:
        raise CommandLineError(f"cannot read: {error.strerror or error}") from None
    if len(data) > limit:
        raise too_long()
    return data


def decode(data: bytes, what: str) -> str:
    """``data`` as UTF-8 text; anything else is an error naming the first bad byte.

    >>> decode(b"\\xce\\xb4", "the program")
    'δ'
    """
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise CommandLineError(f"{what} is not UTF-8 text (byte {error.start} cannot be decoded)") from None


def write_atomically(path: str, write: Callable[[IO[bytes]], Any]) -> None:
    """Call ``write`` on a new temporary file beside ``path``, then rename it over ``path``.

    A failed write (disk full, a file-size limit, an error while formatting)
    leaves an existing ``path`` as it was and no temporary file behind. A
    replaced file keeps its permissions; ``path`` must be a regular file or new.

    >>> import tempfile, pathlib
    >>> target = pathlib.Path(tempfile.mkdtemp()) / "out.txt"
    >>> write_atomically(str(target), lambda handle: handle.write(b"42\\n"))
    >>> target.read_text()
    '42\\n'
    """
    import tempfile
    if os.path.basename(path.rstrip(os.sep + (os.altsep or ""))) in ("", ".", "..") or \
            path.endswith((os.sep, os.altsep or os.sep, os.sep + ".", os.sep + "..")):
        # '/tmp/out/' names a directory; realpath would drop the slash and write a file '/tmp/out'
        raise CommandLineError(f"cannot write '{path}': it names a directory, not a file; "
                               f"give a file name, or leave out --output to write to standard output")
    target = os.path.realpath(path)       # through a symbolic link: replace the file it names
    try:
        mode: int | None = os.stat(target).st_mode
    except FileNotFoundError:
        mode = None
    except OSError as error:
        raise CommandLineError(f"cannot write '{path}': {error.strerror or error}") from None
    if mode is not None and not stat.S_ISREG(mode):
        raise CommandLineError(f"cannot write '{path}': it is {file_kind(mode)}, not a regular file; "
                               f"leave out --output to write to standard output")
    if mode is None:
        umask = os.umask(0o022)
        os.umask(umask)
        mode = 0o666 & ~umask
    try:
        descriptor, temporary = tempfile.mkstemp(prefix=f".{os.path.basename(target)}.", suffix=".part",
                                                 dir=os.path.dirname(target))
    except OSError as error:
        raise CommandLineError(f"cannot write '{path}': {error.strerror or error}") from None
    try:
        with os.fdopen(descriptor, "wb") as handle:
            write(handle)
        os.chmod(temporary, stat.S_IMODE(mode))
        os.replace(temporary, target)
    except BaseException as error:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        if isinstance(error, OSError):
            raise CommandLineError(f"cannot write '{path}': {error.strerror or error}; "
                                   f"'{path}' is unchanged") from None
        raise
