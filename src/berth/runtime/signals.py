"""Signals, through the C module ``_signal`` rather than :mod:`signal`.

:mod:`signal` wraps every constant in an :class:`enum.IntEnum`, and importing it (with
:mod:`enum`) costs about 6 ms on the CI machine kind, a sixth of a whole ``runc run``. The
runtime needs only plain numbers: names for ``kill``, a mask to block and wait on while a
foreground container runs, and a reset to defaults before the container's program is executed.
"""

from __future__ import annotations

import _signal  # type: ignore[import-not-found]

from berth.errors import InvalidArgument

SIG_DFL: int = _signal.SIG_DFL
SIG_IGN: int = _signal.SIG_IGN
SIG_BLOCK: int = _signal.SIG_BLOCK
SIG_UNBLOCK: int = _signal.SIG_UNBLOCK
SIG_SETMASK: int = _signal.SIG_SETMASK

SIGHUP: int = _signal.SIGHUP
SIGINT: int = _signal.SIGINT
SIGQUIT: int = _signal.SIGQUIT
SIGKILL: int = _signal.SIGKILL
SIGUSR1: int = _signal.SIGUSR1
SIGUSR2: int = _signal.SIGUSR2
SIGPIPE: int = _signal.SIGPIPE
SIGALRM: int = _signal.SIGALRM
SIGTERM: int = _signal.SIGTERM
SIGCHLD: int = _signal.SIGCHLD
SIGCONT: int = _signal.SIGCONT
SIGSTOP: int = _signal.SIGSTOP
SIGTSTP: int = _signal.SIGTSTP
SIGTTIN: int = _signal.SIGTTIN
SIGTTOU: int = _signal.SIGTTOU
SIGWINCH: int = _signal.SIGWINCH
SIGURG: int = _signal.SIGURG


def signal_names() -> dict[str, int]:
    """``{"TERM": 15, ...}`` for every signal the C module knows, plus ``RTMIN+n``."""
    names: dict[str, int] = {}
    for name in dir(_signal):
        if name.startswith("SIG") and not name.startswith(("SIG_", "SIGRT")):
            names[name[3:]] = int(getattr(_signal, name))
    rtmin = int(_signal.SIGRTMIN)
    rtmax = int(_signal.SIGRTMAX)
    names["RTMIN"] = rtmin
    names["RTMAX"] = rtmax
    for n in range(1, rtmax - rtmin):
        names[f"RTMIN+{n}"] = rtmin + n
        names[f"RTMAX-{n}"] = rtmax - n
    return names


def parse_signal(text: str) -> int:
    """``9``, ``KILL``, ``SIGKILL``, ``sigkill`` -> 9, as runc's kill accepts them."""
    text = text.strip()
    if text.isdigit():
        number = int(text)
        if 0 < number < int(_signal.NSIG):
            return number
    else:
        name = text.upper()
        name = name[3:] if name.startswith("SIG") else name
        number = signal_names().get(name, 0)
        if number:
            return number
    raise InvalidArgument(
        f"invalid signal {text!r}", hint="give a number or a name such as TERM, KILL, SIGHUP"
    )


def signal_name(number: int) -> str:
    for name, value in signal_names().items():
        if value == number and not name.startswith("RT"):
            return "SIG" + name
    return f"signal {number}"


def all_signals() -> set[int]:
    return set(_signal.valid_signals())


def block(signals: set[int]) -> set[int]:
    """Block ``signals`` in the calling thread; returns the previous mask."""
    return set(_signal.pthread_sigmask(SIG_BLOCK, signals))


def set_mask(signals: set[int]) -> None:
    _signal.pthread_sigmask(SIG_SETMASK, signals)


def wait(signals: set[int], timeout: float) -> int | None:
    """Wait up to ``timeout`` seconds for one of the (blocked) ``signals``; its number or None."""
    info = _signal.sigtimedwait(signals, timeout)
    return None if info is None else int(info.si_signo)


def pending() -> set[int]:
    return set(_signal.sigpending())


def set_handler(signum: int, handler: object) -> object:
    return _signal.signal(signum, handler)


def reset_to_defaults() -> None:
    """Every catchable signal back to its default action and nothing blocked: what a freshly
    exec'd program expects (Python itself ignores SIGPIPE and SIGXFSZ, and execve keeps
    ignored signals ignored)."""
    for signum in _signal.valid_signals():
        if signum in (SIGKILL, SIGSTOP):
            continue
        # Python knows each signal's action (read when it started, or set since through it);
        # None: set by other code, so reset it too. Only these need a system call.
        if _signal.getsignal(signum) == SIG_DFL:
            continue
        try:
            _signal.signal(signum, SIG_DFL)
        except (OSError, ValueError):
            pass
    _signal.pthread_sigmask(SIG_SETMASK, set())


def clear_wakeup_fd() -> None:
    try:
        _signal.set_wakeup_fd(-1)
    except ValueError:
        pass  # not the main thread: there is none to clear


def set_wakeup_fd(fd: int) -> int:
    return int(_signal.set_wakeup_fd(fd, warn_on_full_buffer=False))


def ignore(signum: int) -> None:
    _signal.signal(signum, SIG_IGN)


def pidfd_send(pidfd: int, signum: int) -> None:
    _signal.pidfd_send_signal(pidfd, signum)
