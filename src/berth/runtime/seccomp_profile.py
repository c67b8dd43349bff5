"""berth's default seccomp profile: the semantics of Docker's default profile, in berth's terms.

What a container may call, written down as groups of syscalls by what they are for, each
group a :class:`Grant` with the conditions under which it applies: capabilities the container
must hold (``needs``), capabilities whose presence removes the grant (``unless``), the host
machines it applies to, and argument conditions. :func:`docker_default_profile` turns these
into the runtime-spec's ``linux.seccomp`` object for a given capability set.

The policy, in short:

- anything not granted fails with ``EPERM`` (``SCMP_ACT_ERRNO``, ``defaultErrnoRet`` 1);
- the everyday syscalls of files, memory, processes, signals, time, IPC and sockets are
  allowed; ``socket`` for every address family but ``AF_ALG`` and ``AF_VSOCK``;
- ``personality`` only for the personas programs ask for in practice (Linux, 32-bit Linux,
  ``UNAME26``, and the query ``0xffffffff``);
- ``clone`` without ``CAP_SYS_ADMIN`` only without namespace flags, and ``clone3`` (whose flags
  live in memory a filter cannot read) fails with ``ENOSYS``, so that libc falls back to
  ``clone``;
- the syscalls of administration (mount, namespaces, modules, clock setting, tracing, reboot,
  ...) only with the capability the kernel would check for them anyway.

Syscall names that do not exist on some architecture, or that the installed libseccomp does
not know yet, are harmless: the loader skips them.
"""

from __future__ import annotations

import errno
import os

from berth.values import FrozenValue, init_fields

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Any

ALLOW = "SCMP_ACT_ALLOW"
ERRNO = "SCMP_ACT_ERRNO"

# Namespace flags of clone(2) (linux/sched.h).
CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
NAMESPACE_FLAGS = (
    CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID
    | CLONE_NEWNET
)

AF_ALG = 38
AF_VSOCK = 40

# personality(2) personas that are allowed.
PER_LINUX = 0x0000
PER_LINUX32 = 0x0008
UNAME26 = 0x0020000
PER_QUERY = 0xFFFFFFFF

# Seccomp architectures for each host machine (as uname -m says it): the native one first,
# then the compatibility ABIs its kernel can run.
ARCH_FAMILIES: dict[str, tuple[str, ...]] = {
    "x86_64": ("SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"),
    "aarch64": ("SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"),
    "armv7l": ("SCMP_ARCH_ARM",),
    "i686": ("SCMP_ARCH_X86",),
    "ppc64le": ("SCMP_ARCH_PPC64LE",),
    "s390x": ("SCMP_ARCH_S390X", "SCMP_ARCH_S390"),
    "riscv64": ("SCMP_ARCH_RISCV64",),
}
# Machines grouped the way the architecture-specific grants below name them.
X86 = frozenset({"x86_64", "i686", "i386"})
X86_64 = frozenset({"x86_64"})
ARM = frozenset({"aarch64", "armv7l", "armv8l"})
S390 = frozenset({"s390x", "s390"})


class Condition(FrozenValue):
    """A comparison of one syscall argument, as the runtime-spec's ``args`` entries."""

    __slots__ = ("index", "op", "value", "value_two")
    index: int
    op: str
    value: int
    value_two: int

    def __init__(self, index: int, op: str, value: int, value_two: int = 0) -> None:
        init_fields(self, index=index, op=op, value=value, value_two=value_two)

    def to_json(self) -> dict[str, Any]:
        return {"index": self.index, "value": self.value, "valueTwo": self.value_two,
                "op": self.op}


class Grant(FrozenValue):
    """Syscalls given an action under conditions.

    ``needs``: every one of these capabilities must be granted. ``unless``: the grant is
    dropped when any of these is granted. ``machines``/``not_machines``: host machines
    (``uname -m``) it is limited to or excluded from. ``min_kernel``: oldest kernel it holds
    for.
    """

    __slots__ = (
        "action",
        "args",
        "errno_ret",
        "machines",
        "min_kernel",
        "names",
        "needs",
        "not_machines",
        "unless",
        "why",
    )
    why: str
    names: tuple[str, ...]
    action: str
    errno_ret: int | None
    args: tuple[Condition, ...]
    needs: frozenset[str]
    unless: frozenset[str]
    machines: frozenset[str]
    not_machines: frozenset[str]
    min_kernel: tuple[int, int] | None

    def __init__(
        self,
        why: str,
        names: tuple[str, ...],
        action: str = ALLOW,
        errno_ret: int | None = None,
        args: tuple[Condition, ...] = (),
        needs: frozenset[str] = frozenset(),
        unless: frozenset[str] = frozenset(),
        machines: frozenset[str] = frozenset(),
        not_machines: frozenset[str] = frozenset(),
        min_kernel: tuple[int, int] | None = None,
    ) -> None:
        init_fields(
            self,
            why=why,
            names=names,
            action=action,
            errno_ret=errno_ret,
            args=args,
            needs=needs,
            unless=unless,
            machines=machines,
            not_machines=not_machines,
            min_kernel=min_kernel,
        )

    def applies(self, caps: frozenset[str], machine: str, kernel: tuple[int, int]) -> bool:
        if not self.needs <= caps or self.unless & caps:
            return False
        if self.machines and machine not in self.machines:
            return False
        if machine in self.not_machines:
            return False
        return self.min_kernel is None or kernel >= self.min_kernel

    def to_json(self) -> dict[str, Any]:
        rule: dict[str, Any] = {"names": sorted(self.names), "action": self.action}
        if self.errno_ret is not None:
            rule["errnoRet"] = self.errno_ret
        if self.args:
            rule["args"] = [condition.to_json() for condition in self.args]
        return rule


def _names(text: str) -> tuple[str, ...]:
    return tuple(text.split())


# --- What every container may do ---------------------------------------------------------

EVERYDAY: tuple[Grant, ...] = (
    Grant("files: open, read, write, seek, close", _names("""
        open openat openat2 creat close close_range read write readv writev pread64 pwrite64
        preadv preadv2 pwritev pwritev2 lseek _llseek sendfile sendfile64 copy_file_range
        splice tee vmsplice readahead fadvise64 fadvise64_64 fallocate
        cachestat
    """)),
    Grant("files: descriptors and locks", _names("""
        dup dup2 dup3 fcntl fcntl64 flock
    """)),
    Grant("files: metadata", _names("""
        stat stat64 lstat lstat64 fstat fstat64 fstatat64 newfstatat statx statfs statfs64
        fstatfs fstatfs64 access faccessat faccessat2 readlink readlinkat getcwd getdents
        getdents64 statmount listmount
    """)),
    Grant("files: ownership, mode, times", _names("""
        chmod fchmod fchmodat fchmodat2 chown chown32 fchown fchown32 fchownat lchown lchown32
        utime utimes utimensat utimensat_time64 futimesat umask
    """)),
    Grant("files: the tree (create, link, rename, remove)", _names("""
        mkdir mkdirat mknod mknodat link linkat symlink symlinkat rename renameat renameat2
        unlink unlinkat rmdir chdir fchdir truncate truncate64 ftruncate ftruncate64
        name_to_handle_at
    """)),
    Grant("files: extended attributes", _names("""
        getxattr lgetxattr fgetxattr getxattrat setxattr lsetxattr fsetxattr setxattrat
        listxattr llistxattr flistxattr listxattrat removexattr lremovexattr fremovexattr
        removexattrat
    """)),
    Grant("files: syncing", _names("""
        sync syncfs fsync fdatasync sync_file_range msync
    """)),
    Grant("files: watching", _names("""
        inotify_init inotify_init1 inotify_add_watch inotify_rm_watch fanotify_mark
    """)),
    Grant("asynchronous I/O (aio; not io_uring, whose rings bypass this filter)", _names("""
        io_setup io_destroy io_submit io_cancel io_getevents io_pgetevents io_pgetevents_time64
        ioprio_get ioprio_set
    """)),
    Grant("waiting on descriptors", _names("""
        select _newselect pselect6 pselect6_time64 poll ppoll ppoll_time64 epoll_create
        epoll_create1 epoll_ctl epoll_ctl_old epoll_wait epoll_wait_old epoll_pwait
        epoll_pwait2 eventfd eventfd2 signalfd signalfd4 timerfd_create timerfd_settime
        timerfd_settime64 timerfd_gettime timerfd_gettime64 pipe pipe2 ioctl
    """)),
    Grant("memory", _names("""
        brk mmap mmap2 munmap mremap mprotect madvise mincore mlock mlock2 mlockall munlock
        munlockall remap_file_pages membarrier memfd_create memfd_secret pkey_alloc pkey_free
        pkey_mprotect map_shadow_stack mseal
    """)),
    Grant("processes: create, run, wait, exit", _names("""
        fork vfork execve execveat exit exit_group wait4 waitid waitpid set_tid_address
        set_robust_list get_robust_list rseq restart_syscall pidfd_open pidfd_send_signal
        process_mrelease
    """)),
    Grant("processes: identity", _names("""
        getpid getppid gettid getpgid getpgrp getsid setsid setpgid getuid getuid32 geteuid
        geteuid32 getgid getgid32 getegid getegid32 getresuid getresuid32 getresgid
        getresgid32 getgroups getgroups32 setuid setuid32 setgid setgid32 setreuid setreuid32
        setregid setregid32 setresuid setresuid32 setresgid setresgid32 setfsuid setfsuid32
        setfsgid setfsgid32 setgroups setgroups32 capget capset
    """)),
    Grant("processes: limits, priority, scheduling", _names("""
        getrlimit ugetrlimit setrlimit prlimit64 getrusage getpriority setpriority
        sched_yield sched_getaffinity sched_setaffinity sched_getattr sched_setattr
        sched_getparam sched_setparam sched_getscheduler sched_setscheduler
        sched_get_priority_max sched_get_priority_min sched_rr_get_interval
        sched_rr_get_interval_time64 getcpu
    """)),
    Grant("processes: self-control and sandboxing", _names("""
        prctl seccomp landlock_create_ruleset landlock_add_rule landlock_restrict_self
        get_thread_area set_thread_area uretprobe riscv_hwprobe
    """)),
    Grant("signals", _names("""
        kill tkill tgkill rt_sigaction rt_sigprocmask rt_sigpending rt_sigqueueinfo
        rt_tgsigqueueinfo rt_sigreturn rt_sigsuspend rt_sigtimedwait rt_sigtimedwait_time64
        sigaltstack sigprocmask sigreturn pause
    """)),
    Grant("time and timers (reading; setting needs CAP_SYS_TIME)", _names("""
        time gettimeofday clock_gettime clock_gettime64 clock_getres clock_getres_time64
        clock_nanosleep clock_nanosleep_time64 nanosleep adjtimex clock_adjtime
        clock_adjtime64 alarm getitimer setitimer timer_create timer_delete timer_getoverrun
        timer_gettime timer_gettime64 timer_settime timer_settime64 times
    """)),
    Grant("futexes", _names("""
        futex futex_time64 futex_waitv futex_wait futex_wake futex_requeue
    """)),
    Grant("System V and POSIX IPC", _names("""
        ipc msgget msgsnd msgrcv msgctl semget semop semtimedop semtimedop_time64 semctl
        shmget shmat shmdt shmctl mq_open mq_unlink mq_timedsend mq_timedsend_time64
        mq_timedreceive mq_timedreceive_time64 mq_notify mq_getsetattr
    """)),
    Grant("sockets (socket itself: see below)", _names("""
        socketcall socketpair bind connect listen accept accept4 getsockname getpeername
        getsockopt setsockopt send sendto sendmsg sendmmsg recv recvfrom recvmsg recvmmsg
        recvmmsg_time64 shutdown
    """)),
    Grant("system information", _names("""
        uname sysinfo getrandom
    """)),
    Grant("tracing one's own children (ptrace is contained by the pid namespace)", _names("""
        ptrace process_vm_readv process_vm_writev
    """), min_kernel=(4, 8)),
)

SOCKETS: tuple[Grant, ...] = (
    Grant("socket: families below AF_ALG", ("socket",),
          args=(Condition(0, "SCMP_CMP_LT", AF_ALG),)),
    Grant("socket: the one family between AF_ALG and AF_VSOCK", ("socket",),
          args=(Condition(0, "SCMP_CMP_EQ", AF_ALG + 1),)),
    Grant("socket: families above AF_VSOCK", ("socket",),
          args=(Condition(0, "SCMP_CMP_GT", AF_VSOCK),)),
)

PERSONALITIES: tuple[Grant, ...] = tuple(
    Grant(f"personality {persona:#x}", ("personality",),
          args=(Condition(0, "SCMP_CMP_EQ", persona),))
    for persona in (PER_LINUX, PER_LINUX32, UNAME26, UNAME26 | PER_LINUX32, PER_QUERY)
)

MACHINE_SPECIFIC: tuple[Grant, ...] = (
    Grant("x86-64: thread-local storage setup", ("arch_prctl",), machines=X86_64),
    Grant("x86: segment descriptors", ("modify_ldt",), machines=X86),
    Grant("arm: cache and TLS helpers", _names("""
        arm_fadvise64_64 arm_sync_file_range sync_file_range2 breakpoint cacheflush set_tls
    """), machines=ARM),
    Grant("ppc64le", ("sync_file_range2", "swapcontext"), machines=frozenset({"ppc64le"})),
    Grant("s390", ("s390_pci_mmio_read", "s390_pci_mmio_write", "s390_runtime_instr"),
          machines=S390),
    Grant("riscv64", ("riscv_flush_icache",), machines=frozenset({"riscv64"})),
)

# --- Process creation: clone and clone3 ---------------------------------------------------

CLONE: tuple[Grant, ...] = (
    Grant("clone without namespace flags", ("clone",),
          args=(Condition(0, "SCMP_CMP_MASKED_EQ", NAMESPACE_FLAGS, 0),),
          unless=frozenset({"CAP_SYS_ADMIN"}), not_machines=S390),
    Grant("clone without namespace flags (s390 passes flags second)", ("clone",),
          args=(Condition(1, "SCMP_CMP_MASKED_EQ", NAMESPACE_FLAGS, 0),),
          unless=frozenset({"CAP_SYS_ADMIN"}), machines=S390),
    Grant("clone3: its flags cannot be checked, so make libc fall back to clone", ("clone3",),
          action=ERRNO, errno_ret=errno.ENOSYS, unless=frozenset({"CAP_SYS_ADMIN"})),
)

# --- What capabilities unlock -------------------------------------------------------------


def _with(cap: str, why: str, names: str) -> Grant:
    return Grant(why, _names(names), needs=frozenset({cap}))


BY_CAPABILITY: tuple[Grant, ...] = (
    _with("CAP_DAC_READ_SEARCH", "open files by handle", "open_by_handle_at"),
    _with("CAP_SYS_ADMIN", "mounts, namespaces, names, and the rest of system administration", """
        mount umount umount2 mount_setattr move_mount open_tree fsopen fsconfig fsmount fspick
        unshare setns clone clone3 sethostname setdomainname bpf perf_event_open
        fanotify_init lookup_dcookie quotactl quotactl_fd syslog lsm_get_self_attr
        lsm_set_self_attr lsm_list_modules
    """),
    _with("CAP_SYS_BOOT", "reboot", "reboot"),
    _with("CAP_SYS_CHROOT", "chroot", "chroot"),
    _with("CAP_SYS_MODULE", "kernel modules", "init_module finit_module delete_module"),
    _with("CAP_SYS_PACCT", "process accounting", "acct"),
    _with("CAP_SYS_PTRACE", "inspecting other processes", """
        ptrace process_vm_readv process_vm_writev kcmp pidfd_getfd process_madvise
    """),
    _with("CAP_SYS_RAWIO", "I/O ports", "iopl ioperm"),
    _with("CAP_SYS_TIME", "setting the clock", """
        settimeofday stime clock_settime clock_settime64
    """),
    _with("CAP_SYS_TTY_CONFIG", "hanging up the terminal", "vhangup"),
    _with("CAP_SYS_NICE", "NUMA memory policy", """
        get_mempolicy set_mempolicy set_mempolicy_home_node mbind
    """),
    _with("CAP_SYSLOG", "the kernel log", "syslog"),
    _with("CAP_BPF", "BPF programs", "bpf"),
    _with("CAP_PERFMON", "performance monitoring", "perf_event_open"),
)

PROFILE: tuple[Grant, ...] = (
    EVERYDAY + SOCKETS + PERSONALITIES + MACHINE_SPECIFIC + CLONE + BY_CAPABILITY
)


def _kernel_version(release: str) -> tuple[int, int]:
    parts = release.split(".")
    try:
        return int(parts[0]), int("".join(ch for ch in parts[1] if ch.isdigit()) or 0)
    except (IndexError, ValueError):
        return (0, 0)


def docker_default_profile(
    capabilities: Iterable[str],
    *,
    machine: str | None = None,
    kernel: str | None = None,
) -> dict[str, Any]:
    """The runtime-spec ``linux.seccomp`` object for a container holding ``capabilities``.

    ``capabilities`` is the container's bounding set (``CAP_*`` names). ``machine`` (as
    ``uname -m``) and ``kernel`` (a release such as ``"6.1.0"``) default to this host's; they
    choose the architectures and the machine- or kernel-specific grants.
    """
    caps = frozenset(capabilities)
    machine = machine or os.uname().machine  # what platform.machine() says
    kernel_version = _kernel_version(kernel or os.uname().release)
    syscalls = [
        grant.to_json() for grant in PROFILE if grant.applies(caps, machine, kernel_version)
    ]
    return {
        "defaultAction": ERRNO,
        "defaultErrnoRet": errno.EPERM,
        "architectures": list(ARCH_FAMILIES.get(machine, ())),
        "syscalls": syscalls,
    }


def allowed_syscalls(profile: dict[str, Any]) -> set[str]:
    """Names a profile allows unconditionally (no ``args``): for tests and ``berth info``."""
    return {
        name
        for rule in profile["syscalls"]
        if rule["action"] == ALLOW and not rule.get("args")
        for name in rule["names"]
    }
