"""Files an installation writes and checks: who may read them, and writing them safely.

The daemon runs as a service user (``posbridge`` under systemd). When an installer runs as root,
``init`` and ``keys new`` hand the files the daemon needs to that user: private keys
``0600`` owned by it, the configuration ``0640`` owned by root and readable by its group, the
data folder ``0750`` owned by it. Run as anybody else, the files are that person's own, with
the same modes.

The judgements (:func:`secret_mode_problem`, :func:`may_read`, :func:`may_write`) are pure
functions of a file's mode and owner; :func:`write_file` and :func:`make_dir` are the only
writers, and never replace an existing file unless told to.
"""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
import stat
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Account", "FileFacts", "account_exists", "daemon_account", "file_facts", "make_dir",
           "may_read", "may_write", "secret_mode_problem", "service_account", "write_file"]

#: The mode bits a private key may have: read and write for its owner, read for its group
#: (``0640 root:posbridge`` is the other documented layout).
SECRET_MODE_MAX = 0o640


@dataclass(frozen=True, slots=True)
class Account:
    """A user and the groups it is in (``gids`` includes the primary group)."""

    name: str
    uid: int
    gid: int
    gids: frozenset[int]


@dataclass(frozen=True, slots=True)
class FileFacts:
    """What ``stat`` says about a path (``exists`` False: nothing there)."""

    path: Path
    exists: bool
    is_file: bool = False
    is_dir: bool = False
    mode: int = 0  # permission bits only
    uid: int = -1
    gid: int = -1


def service_account(name: str) -> Account | None:
    """The account ``name`` when this process runs as root and the account exists: only then
    can (and must) files be handed over to it."""
    if os.geteuid() != 0 or not name:
        return None
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        return None
    gids = {entry.pw_gid, *(g.gr_gid for g in grp.getgrall() if name in g.gr_mem)}
    return Account(name=name, uid=entry.pw_uid, gid=entry.pw_gid, gids=frozenset(gids))


def account_exists(name: str) -> bool:
    """Whether the system has a user called ``name``."""
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def daemon_account(service_user: str) -> Account | None:
    """Who must be able to read and write the installation's files: the service user when
    run as root (None if it does not exist: root's own access proves nothing), else the
    user running this command (who would run the daemon)."""
    if os.geteuid() == 0:
        return service_account(service_user)
    uid = os.geteuid()
    name = pwd.getpwuid(uid).pw_name
    return Account(name=name, uid=uid, gid=os.getegid(),
                   gids=frozenset({os.getegid(), *os.getgroups()}))


def file_facts(path: Path) -> FileFacts:
    """``stat`` of ``path`` (following links)."""
    try:
        st = path.stat()
    except OSError:
        return FileFacts(path=path, exists=False)
    return FileFacts(path=path, exists=True, is_file=stat.S_ISREG(st.st_mode),
                     is_dir=stat.S_ISDIR(st.st_mode), mode=stat.S_IMODE(st.st_mode),
                     uid=st.st_uid, gid=st.st_gid)


# -- judgements (pure) ---------------------------------------------------------------------


def secret_mode_problem(mode: int) -> str | None:
    """What is unsafe about a private key file's ``mode``, or None (``0600``, ``0640`` and
    stricter are safe)."""
    if mode & 0o007:
        return f"every user on this machine may use it (mode {mode:04o})"
    if mode & ~SECRET_MODE_MAX & 0o777:
        return f"its mode {mode:04o} allows more than owner read/write and group read"
    return None


def _allowed(facts: FileFacts, account: Account, owner_bit: int, group_bit: int,
             other_bit: int) -> bool:
    if account.uid == 0:
        return True
    if facts.uid == account.uid:
        return bool(facts.mode & owner_bit)
    if facts.gid in account.gids:
        return bool(facts.mode & group_bit)
    return bool(facts.mode & other_bit)


def may_read(facts: FileFacts, account: Account) -> bool:
    """Whether ``account`` may read the file (by its mode bits; the folders above are not
    looked at)."""
    return _allowed(facts, account, stat.S_IRUSR, stat.S_IRGRP, stat.S_IROTH)


def may_write(facts: FileFacts, account: Account) -> bool:
    """Whether ``account`` may write the file, or create files in the folder."""
    bits = (stat.S_IWUSR | stat.S_IXUSR, stat.S_IWGRP | stat.S_IXGRP,
            stat.S_IWOTH | stat.S_IXOTH) if facts.is_dir else (
        stat.S_IWUSR, stat.S_IWGRP, stat.S_IWOTH)
    if account.uid == 0:
        return True
    if facts.uid == account.uid:
        return facts.mode & bits[0] == bits[0]
    if facts.gid in account.gids:
        return facts.mode & bits[1] == bits[1]
    return facts.mode & bits[2] == bits[2]


# -- writers ---------------------------------------------------------------------------------


def write_file(path: Path, data: bytes, *, mode: int, owner: tuple[int, int] | None = None,
               force: bool = False) -> None:
    """Write ``data`` to ``path`` with exactly ``mode`` (whatever the umask) and, when given,
    ``owner`` (uid, gid). The file appears whole or not at all; an existing file is replaced
    only with ``force`` (else FileExistsError, and nothing changes)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fchmod(f.fileno(), mode)
            if owner is not None:
                os.fchown(f.fileno(), *owner)
            os.fsync(f.fileno())
        if force:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)  # fails if path exists: never clobbers
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def make_dir(path: Path, *, mode: int, owner: tuple[int, int] | None = None) -> bool:
    """Create ``path`` (and its parents) with ``mode`` and ``owner``; an existing folder is
    left as it is. Returns whether it was created."""
    if path.is_dir():
        return False
    path.mkdir(parents=True, mode=mode)
    os.chmod(path, mode)  # mkdir's mode is filtered by the umask
    if owner is not None:
        os.chown(path, *owner)
    return True
