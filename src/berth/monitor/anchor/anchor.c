/*
 * berth-anchor: the smallest process that keeps a store's detached containers accountable.
 *
 * One anchor runs per store, as the parent of the store's supervisor (a Python process,
 * berth.monitor). It exists so that the supervisor may die (a bug, kill -9, the OOM killer)
 * without losing what only a parent can know:
 *
 *   - It is a child subreaper (PR_SET_CHILD_SUBREAPER). The containers' init processes are the
 *     supervisor's children (berth's own runtime) or orphans re-parented to the nearest
 *     subreaper (runc, crun): while the supervisor lives, to the anchor; when it dies, all of
 *     them come to the anchor. The anchor reaps every child but the supervisor, reads its start
 *     time from /proc/PID/stat before reaping it (pids are reused; pid + start time is not), and
 *     sends "X pid start status sec nsec" to the supervisor. While no supervisor runs, these
 *     records wait in memory and are sent to the next one.
 *   - It keeps file descriptors for the supervisor ("S tag" + fd): the read ends of the
 *     containers' output FIFOs, a tty container's pty master, the write end of an open stdin.
 *     Were the supervisor their only holder, its death would lose the output still in a FIFO
 *     of a container that exits meanwhile, hang up a terminal (SIGHUP), or end a stdin. A new
 *     supervisor gets them back ("F tag" + fd) before "R" (ready). "D tag" closes one.
 *   - It restarts the supervisor when it dies, with a backoff when it dies young. When the
 *     supervisor exits with status 0 (idle, or asked to stop) and nothing else is left (no
 *     child, no kept fd, no unsent record), the anchor exits too; "Q" makes it exit with the
 *     supervisor whatever is left.
 *
 * The supervisor talks to the anchor over a SOCK_SEQPACKET socket pair: one message per
 * record, fds as SCM_RIGHTS. Usage (the supervisor gets "--anchor-fd N" appended):
 *
 *     berth-anchor PROGRAM [ARG...]
 *
 * It detaches itself (fork, setsid) and exits in the caller at once. Its stdout and stderr
 * are the supervisor's log file. SIGTERM/SIGINT/SIGHUP: passed on to the supervisor, after
 * which the anchor exits with it.
 *
 * Freestanding: no C library, raw system calls only (x86_64 and aarch64), so it costs a few
 * pages of memory. Built by build.py next to this file; anchor.<arch>.bin is its output.
 */

typedef unsigned long size_t;
typedef long ssize_t;
typedef unsigned long u64;

#if defined(__x86_64__)
#define SYS_read 0
#define SYS_write 1
#define SYS_close 3
#define SYS_rt_sigprocmask 14
#define SYS_getpid 39
#define SYS_sendmsg 46
#define SYS_recvmsg 47
#define SYS_socketpair 53
#define SYS_clone 56
#define SYS_execve 59
#define SYS_exit_group 231
#define SYS_wait4 61
#define SYS_kill 62
#define SYS_fcntl 72
#define SYS_chdir 80
#define SYS_setsid 112
#define SYS_prctl 157
#define SYS_clock_gettime 228
#define SYS_waitid 247
#define SYS_openat 257
#define SYS_ppoll 271
#define SYS_signalfd4 289
#define SYS_prlimit64 302
__asm__(".text\n"
        ".global _start\n"
        "_start:\n"
        "    mov %rsp, %rdi\n"
        "    and $-16, %rsp\n"
        "    call anchor_main\n"
        "    hlt\n");

static long sys6(long n, long a, long b, long c, long d, long e, long f)
{
    long ret;
    register long r10 __asm__("r10") = d;
    register long r8 __asm__("r8") = e;
    register long r9 __asm__("r9") = f;
    __asm__ volatile("syscall"
                     : "=a"(ret)
                     : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
                     : "rcx", "r11", "memory");
    return ret;
}
#elif defined(__aarch64__)
#define SYS_read 63
#define SYS_write 64
#define SYS_close 57
#define SYS_rt_sigprocmask 135
#define SYS_getpid 172
#define SYS_sendmsg 211
#define SYS_recvmsg 212
#define SYS_socketpair 199
#define SYS_clone 220
#define SYS_execve 221
#define SYS_exit_group 94
#define SYS_wait4 260
#define SYS_kill 129
#define SYS_fcntl 25
#define SYS_chdir 49
#define SYS_setsid 157
#define SYS_prctl 167
#define SYS_clock_gettime 113
#define SYS_waitid 95
#define SYS_openat 56
#define SYS_ppoll 73
#define SYS_signalfd4 74
#define SYS_prlimit64 261
__asm__(".text\n"
        ".global _start\n"
        "_start:\n"
        "    mov x0, sp\n"
        "    bl anchor_main\n"
        "    brk #0\n");

static long sys6(long n, long a, long b, long c, long d, long e, long f)
{
    register long x8 __asm__("x8") = n;
    register long x0 __asm__("x0") = a;
    register long x1 __asm__("x1") = b;
    register long x2 __asm__("x2") = c;
    register long x3 __asm__("x3") = d;
    register long x4 __asm__("x4") = e;
    register long x5 __asm__("x5") = f;
    __asm__ volatile("svc #0"
                     : "+r"(x0)
                     : "r"(x8), "r"(x1), "r"(x2), "r"(x3), "r"(x4), "r"(x5)
                     : "memory");
    return x0;
}
#else
#error "berth-anchor: unsupported architecture"
#endif

#define sys0(n) sys6(n, 0, 0, 0, 0, 0, 0)
#define sys1(n, a) sys6(n, (long)(a), 0, 0, 0, 0, 0)
#define sys2(n, a, b) sys6(n, (long)(a), (long)(b), 0, 0, 0, 0)
#define sys3(n, a, b, c) sys6(n, (long)(a), (long)(b), (long)(c), 0, 0, 0)
#define sys4(n, a, b, c, d) sys6(n, (long)(a), (long)(b), (long)(c), (long)(d), 0, 0)
#define sys5(n, a, b, c, d, e) sys6(n, (long)(a), (long)(b), (long)(c), (long)(d), (long)(e), 0)

/* constants of the Linux ABI (the same on both architectures) */
#define EINTR 4
#define EAGAIN 11
#define ECHILD 10
#define SIGHUP 1
#define SIGINT 2
#define SIGPIPE 13
#define SIGTERM 15
#define SIGCHLD 17
#define SIG_SETMASK 2
#define SIG_BLOCK 0
#define SFD_CLOEXEC 02000000
#define SFD_NONBLOCK 04000
#define O_RDONLY 0
#define O_CLOEXEC 02000000
#define AT_FDCWD (-100)
#define AF_UNIX 1
#define SOCK_SEQPACKET 5
#define SOCK_CLOEXEC 02000000
#define MSG_DONTWAIT 0x40
#define MSG_NOSIGNAL 0x4000
#define MSG_CMSG_CLOEXEC 0x40000000
#define SOL_SOCKET 1
#define SCM_RIGHTS 1
#define F_SETFD 2
#define POLLIN 0x1
#define POLLOUT 0x4
#define POLLERR 0x8
#define POLLHUP 0x10
#define P_ALL 0
#define WNOHANG 1
#define WEXITED 4
#define WNOWAIT 0x01000000
#define PR_SET_CHILD_SUBREAPER 36
#define CLOCK_REALTIME 0
#define CLOCK_MONOTONIC 1
#define RLIMIT_NOFILE 7

struct timespec {
    long sec;
    long nsec;
};
struct pollfd {
    int fd;
    short events;
    short revents;
};
struct iovec {
    void *base;
    size_t len;
};
struct msghdr {
    void *name;
    int namelen;
    struct iovec *iov;
    size_t iovlen;
    void *control;
    size_t controllen;
    int flags;
};
struct cmsghdr {
    size_t len;
    int level;
    int type;
};
#define CMSG_DATA_OFFSET sizeof(struct cmsghdr)
#define CMSG_SPACE_ONE_FD 24 /* align8(16 + 4) */
#define CMSG_LEN_ONE_FD 20

/* ------------------------------------------------------------------------------- helpers */

/* the compiler may emit calls to these for struct copies and zeroing */
__attribute__((used)) void *memset(void *to, int c, size_t n)
{
    volatile char *p = to;
    for (size_t i = 0; i < n; i++)
        p[i] = (char)c;
    return to;
}

__attribute__((used)) void *memcpy(void *to, const void *from, size_t n)
{
    volatile char *p = to;
    const char *q = from;
    for (size_t i = 0; i < n; i++)
        p[i] = q[i];
    return to;
}

static size_t length(const char *s)
{
    size_t n = 0;
    while (s[n])
        n++;
    return n;
}

static void copy(char *to, const char *from, size_t n)
{
    for (size_t i = 0; i < n; i++)
        to[i] = from[i];
}

static int same(const char *a, size_t alen, const char *b, size_t blen)
{
    if (alen != blen)
        return 0;
    for (size_t i = 0; i < alen; i++)
        if (a[i] != b[i])
            return 0;
    return 1;
}

/* writes the decimal form of v at p; returns the number of characters */
static size_t decimal(char *p, u64 v)
{
    char tmp[24];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (size_t i = 0; i < n; i++)
        p[i] = tmp[n - 1 - i];
    return n;
}

static void say(const char *s)
{
    sys3(SYS_write, 2, s, length(s));
}

static void say_number(const char *before, long value, const char *after)
{
    char line[160];
    size_t n = 0, m = length(before);
    if (m > 100)
        m = 100;
    copy(line, before, m);
    n = m;
    if (value < 0) {
        line[n++] = '-';
        value = -value;
    }
    n += decimal(line + n, (u64)value);
    m = length(after);
    if (m > 40)
        m = 40;
    copy(line + n, after, m);
    n += m;
    sys3(SYS_write, 2, line, n);
}

static __attribute__((noreturn)) void leave(int code)
{
    for (;;)
        sys1(SYS_exit_group, code);
}

static long monotonic_ms(void)
{
    struct timespec ts;
    sys2(SYS_clock_gettime, CLOCK_MONOTONIC, &ts);
    return ts.sec * 1000 + ts.nsec / 1000000;
}

/* field 22 of /proc/PID/stat (start time in clock ticks), or 0 */
static u64 start_time_of(int pid)
{
    char path[32] = "/proc/";
    size_t n = 6;
    n += decimal(path + n, (u64)pid);
    copy(path + n, "/stat", 6);
    long fd = sys4(SYS_openat, AT_FDCWD, path, O_RDONLY | O_CLOEXEC, 0);
    if (fd < 0)
        return 0;
    char buf[1024];
    long got = sys3(SYS_read, fd, buf, sizeof(buf) - 1);
    sys1(SYS_close, fd);
    if (got <= 0)
        return 0;
    long close_paren = -1;
    for (long i = 0; i < got; i++)
        if (buf[i] == ')')
            close_paren = i;
    if (close_paren < 0)
        return 0;
    /* after ") " comes field 3; field 22 is 19 spaces further */
    long i = close_paren + 2;
    for (int spaces = 0; i < got && spaces < 19; i++)
        if (buf[i] == ' ')
            spaces++;
    u64 value = 0;
    for (; i < got && buf[i] >= '0' && buf[i] <= '9'; i++)
        value = value * 10 + (u64)(buf[i] - '0');
    return value;
}

/* ------------------------------------------------------------------------------- state */

#define MAX_KEPT 16384
#define TAG_MAX 100
struct kept {
    int fd; /* -1: dropped */
    int taglen;
    char tag[TAG_MAX];
};
static struct kept kept[MAX_KEPT];
static int nkept;

#define MAX_EXITS 4096
struct exit_record {
    int pid;
    int status;
    u64 start;
    long sec;
    long nsec;
};
static struct exit_record exits[MAX_EXITS];
static int exits_head, nexits;

static char **supervisor_argv;
static char **envp;
static int supervisor_pid;  /* 0: none */
static int channel = -1;    /* our end of the socket pair with the supervisor */
static int replay_next = -1; /* next kept fd to hand to a new supervisor; -1: none */
static int ready_pending;   /* "R" not yet sent */
static int quit_requested;  /* exit with the supervisor */
static long started_ms, restart_at_ms = -1, backoff_ms;
static int quick_failures;

static void queue_exit(int pid, u64 start, int status)
{
    struct timespec now;
    sys2(SYS_clock_gettime, CLOCK_REALTIME, &now);
    if (nexits == MAX_EXITS) { /* full: the oldest record goes */
        exits_head = (exits_head + 1) % MAX_EXITS;
        nexits--;
        say("berth-anchor: too many exit records waiting for a supervisor; dropped one\n");
    }
    struct exit_record *r = &exits[(exits_head + nexits) % MAX_EXITS];
    r->pid = pid;
    r->start = start;
    r->status = status;
    r->sec = now.sec;
    r->nsec = now.nsec;
    nexits++;
}

static void keep_fd(const char *tag, int taglen, int fd)
{
    for (int i = 0; i < nkept; i++)
        if (kept[i].fd >= 0 && same(kept[i].tag, (size_t)kept[i].taglen, tag, (size_t)taglen)) {
            sys1(SYS_close, kept[i].fd);
            kept[i].fd = fd;
            return;
        }
    if (nkept == MAX_KEPT) {
        say("berth-anchor: cannot keep more file descriptors\n");
        sys1(SYS_close, fd);
        return;
    }
    kept[nkept].fd = fd;
    kept[nkept].taglen = taglen;
    copy(kept[nkept].tag, tag, (size_t)taglen);
    nkept++;
}

/* removes the dropped entries; not while a replay walks the array */
static void compact(void)
{
    if (replay_next >= 0)
        return;
    int n = 0;
    for (int i = 0; i < nkept; i++)
        if (kept[i].fd >= 0) {
            if (n != i)
                kept[n] = kept[i];
            n++;
        }
    nkept = n;
}

static void drop_fd(const char *tag, int taglen)
{
    for (int i = 0; i < nkept; i++)
        if (kept[i].fd >= 0 && same(kept[i].tag, (size_t)kept[i].taglen, tag, (size_t)taglen)) {
            sys1(SYS_close, kept[i].fd);
            kept[i].fd = -1;
        }
    compact();
}

static int kept_count(void)
{
    int n = 0;
    for (int i = 0; i < nkept; i++)
        if (kept[i].fd >= 0)
            n++;
    return n;
}

/* ------------------------------------------------------------------ the supervisor channel */

/* sends one message (with fd >= 0 attached); 1 sent, 0 try later, -1 the channel is gone */
static int send_message(const char *data, size_t len, int fd)
{
    struct iovec iov = {(void *)data, len};
    union {
        char buf[CMSG_SPACE_ONE_FD];
        struct cmsghdr align;
    } control;
    struct msghdr msg = {0, 0, &iov, 1, 0, 0, 0};
    if (fd >= 0) {
        struct cmsghdr *c = &control.align;
        c->len = CMSG_LEN_ONE_FD;
        c->level = SOL_SOCKET;
        c->type = SCM_RIGHTS;
        copy(control.buf + CMSG_DATA_OFFSET, (const char *)&fd, sizeof(int));
        msg.control = control.buf;
        msg.controllen = CMSG_SPACE_ONE_FD;
    }
    long r = sys3(SYS_sendmsg, channel, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (r >= 0)
        return 1;
    if (r == -EAGAIN || r == -EINTR)
        return 0;
    return -1;
}

static void close_channel(void)
{
    if (channel >= 0)
        sys1(SYS_close, channel);
    channel = -1;
    replay_next = -1;
    ready_pending = 0;
    compact();
}

/* sends what waits: kept fds (replay), exit records, then "R"; stops when the socket is full */
static void flush(void)
{
    if (channel < 0)
        return;
    char line[128];
    while (replay_next >= 0 && replay_next < nkept) {
        struct kept *k = &kept[replay_next];
        if (k->fd >= 0) {
            line[0] = 'F';
            copy(line + 1, k->tag, (size_t)k->taglen);
            int r = send_message(line, (size_t)k->taglen + 1, k->fd);
            if (r == 0)
                return;
            if (r < 0) {
                close_channel();
                return;
            }
        }
        replay_next++;
    }
    if (replay_next >= 0) {
        replay_next = -1;
        compact();
    }
    while (nexits > 0) {
        struct exit_record *x = &exits[exits_head];
        size_t n = 0;
        line[n++] = 'X';
        line[n++] = ' ';
        n += decimal(line + n, (u64)x->pid);
        line[n++] = ' ';
        n += decimal(line + n, x->start);
        line[n++] = ' ';
        n += decimal(line + n, (u64)(unsigned)x->status);
        line[n++] = ' ';
        n += decimal(line + n, (u64)x->sec);
        line[n++] = ' ';
        n += decimal(line + n, (u64)x->nsec);
        int r = send_message(line, n, -1);
        if (r == 0)
            return;
        if (r < 0) {
            close_channel();
            return;
        }
        exits_head = (exits_head + 1) % MAX_EXITS;
        nexits--;
    }
    if (ready_pending) {
        int r = send_message("R", 1, -1);
        if (r == 0)
            return;
        if (r < 0) {
            close_channel();
            return;
        }
        ready_pending = 0;
    }
}

static int wants_to_send(void)
{
    return channel >= 0 && (replay_next >= 0 || nexits > 0 || ready_pending);
}

/* reads what the supervisor sent; closes the channel at its end */
static void receive(void)
{
    for (;;) {
        char data[TAG_MAX + 8];
        union {
            char buf[64];
            struct cmsghdr align;
        } control;
        struct iovec iov = {data, sizeof(data)};
        struct msghdr msg = {0, 0, &iov, 1, control.buf, sizeof(control.buf), 0};
        long r = sys3(SYS_recvmsg, channel, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
        if (r == -EAGAIN || r == -EINTR)
            return;
        if (r <= 0) {
            close_channel();
            return;
        }
        int fd = -1;
        if (msg.controllen >= CMSG_LEN_ONE_FD) {
            struct cmsghdr *c = &control.align;
            if (c->level == SOL_SOCKET && c->type == SCM_RIGHTS) {
                copy((char *)&fd, control.buf + CMSG_DATA_OFFSET, sizeof(int));
                /* more than one fd in one message is not part of the protocol */
                size_t extra = (c->len - CMSG_DATA_OFFSET) / sizeof(int);
                for (size_t i = 1; i < extra && i < 8; i++) {
                    int other;
                    copy((char *)&other, control.buf + CMSG_DATA_OFFSET + i * sizeof(int),
                         sizeof(int));
                    sys1(SYS_close, other);
                }
            }
        }
        int taglen = (int)r - 1;
        if (taglen > TAG_MAX)
            taglen = TAG_MAX;
        if (data[0] == 'S' && fd >= 0 && taglen > 0) {
            keep_fd(data + 1, taglen, fd);
            fd = -1;
        } else if (data[0] == 'D' && taglen > 0) {
            drop_fd(data + 1, taglen);
        } else if (data[0] == 'Q') {
            quit_requested = 1;
        }
        if (fd >= 0)
            sys1(SYS_close, fd);
    }
}

/* --------------------------------------------------------------------- the supervisor */

static void start_supervisor(void)
{
    int pair[2];
    if (sys4(SYS_socketpair, AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) < 0) {
        say("berth-anchor: socketpair failed\n");
        restart_at_ms = monotonic_ms() + 1000;
        return;
    }
    /* "PROGRAM ARGS... --anchor-fd N" */
    static char *argv[256];
    static char fd_text[16];
    int argc = 0;
    while (supervisor_argv[argc] && argc < 250) {
        argv[argc] = supervisor_argv[argc];
        argc++;
    }
    fd_text[decimal(fd_text, (u64)pair[1])] = 0;
    argv[argc++] = "--anchor-fd";
    argv[argc++] = fd_text;
    argv[argc] = 0;

    long pid = sys5(SYS_clone, SIGCHLD, 0, 0, 0, 0);
    if (pid == 0) {
        u64 none = 0;
        sys4(SYS_rt_sigprocmask, SIG_SETMASK, &none, 0, sizeof(none));
        sys3(SYS_fcntl, pair[1], F_SETFD, 0);
        long err = sys3(SYS_execve, argv[0], argv, envp);
        say_number("berth-anchor: cannot execute the supervisor: error ", -err, "\n");
        leave(127);
    }
    sys1(SYS_close, pair[1]);
    if (pid < 0) {
        sys1(SYS_close, pair[0]);
        say("berth-anchor: fork failed\n");
        restart_at_ms = monotonic_ms() + 1000;
        return;
    }
    supervisor_pid = (int)pid;
    channel = pair[0];
    started_ms = monotonic_ms();
    restart_at_ms = -1;
    replay_next = 0;
    ready_pending = 1;
    flush();
}

static int has_other_children(void)
{
    int info[32];
    return sys5(SYS_waitid, P_ALL, 0, info, WEXITED | WNOHANG | WNOWAIT, 0) == 0;
}

static void supervisor_exited(int status)
{
    supervisor_pid = 0;
    if (channel >= 0) {
        receive(); /* what it said last */
        close_channel();
    }
    int exited = (status & 0x7f) == 0;
    int code = (status >> 8) & 0xff;
    if (quit_requested)
        leave(0);
    if (exited && code == 0) {
        if (!has_other_children() && kept_count() == 0 && nexits == 0)
            leave(0);
        restart_at_ms = monotonic_ms();
        return;
    }
    if (exited)
        say_number("berth-anchor: the supervisor exited with status ", code, "; restarting it\n");
    else
        say_number("berth-anchor: the supervisor was killed by signal ", status & 0x7f,
                   "; restarting it\n");
    long ran = monotonic_ms() - started_ms;
    if (ran < 10000) {
        quick_failures++;
        backoff_ms = backoff_ms ? backoff_ms * 2 : 500;
        if (backoff_ms > 30000)
            backoff_ms = 30000;
    } else {
        quick_failures = 0;
        backoff_ms = 100;
    }
    if (quick_failures > 6 && !has_other_children() && kept_count() == 0 && nexits == 0) {
        say("berth-anchor: the supervisor keeps failing and nothing needs it; giving up\n");
        leave(1);
    }
    restart_at_ms = monotonic_ms() + backoff_ms;
}

static void reap(void)
{
    for (;;) {
        int info[32]; /* siginfo_t: si_signo, si_errno, si_code, padding, si_pid, ... */
        for (int i = 0; i < 32; i++)
            info[i] = 0;
        long r = sys5(SYS_waitid, P_ALL, 0, info, WEXITED | WNOHANG | WNOWAIT, 0);
        int pid = info[4];
        if (r < 0 || pid == 0)
            return;
        u64 start = start_time_of(pid);
        int status = 0;
        if (sys4(SYS_wait4, pid, &status, 0, 0) != pid)
            continue;
        if (pid == supervisor_pid)
            supervisor_exited(status);
        else
            queue_exit(pid, start, status);
    }
}

/* --------------------------------------------------------------------------- main loop */

__attribute__((noreturn, used)) void anchor_main(long *sp)
{
    long argc = sp[0];
    char **argv = (char **)(sp + 1);
    envp = argv + argc + 1;
    if (argc < 2) {
        say("usage: berth-anchor PROGRAM [ARG...]\n");
        leave(2);
    }
    supervisor_argv = argv + 1;

    long pid = sys5(SYS_clone, SIGCHLD, 0, 0, 0, 0);
    if (pid < 0) {
        say("berth-anchor: fork failed\n");
        leave(1);
    }
    if (pid > 0)
        leave(0); /* the caller goes on; the anchor lives in the child */
    sys0(SYS_setsid);
    sys1(SYS_chdir, "/");
    sys2(SYS_prctl, PR_SET_CHILD_SUBREAPER, 1);
    u64 limit[2]; /* it keeps fds for many containers: as many as it may have */
    if (sys4(SYS_prlimit64, 0, RLIMIT_NOFILE, 0, limit) == 0 && limit[0] < limit[1]) {
        limit[0] = limit[1];
        sys4(SYS_prlimit64, 0, RLIMIT_NOFILE, limit, 0);
    }

    u64 mask = (1UL << (SIGCHLD - 1)) | (1UL << (SIGTERM - 1)) | (1UL << (SIGINT - 1)) |
               (1UL << (SIGHUP - 1)) | (1UL << (SIGPIPE - 1));
    sys4(SYS_rt_sigprocmask, SIG_BLOCK, &mask, 0, sizeof(mask));
    u64 watched = mask & ~(1UL << (SIGPIPE - 1));
    long sigfd = sys4(SYS_signalfd4, -1, &watched, sizeof(watched), SFD_CLOEXEC | SFD_NONBLOCK);
    if (sigfd < 0) {
        say("berth-anchor: signalfd failed\n");
        leave(1);
    }
    start_supervisor();

    for (;;) {
        struct pollfd fds[2];
        int nfds = 1;
        fds[0].fd = (int)sigfd;
        fds[0].events = POLLIN;
        fds[0].revents = 0;
        if (channel >= 0) {
            fds[1].fd = channel;
            fds[1].events = (short)(POLLIN | (wants_to_send() ? POLLOUT : 0));
            fds[1].revents = 0;
            nfds = 2;
        }
        struct timespec timeout, *tp = 0;
        if (restart_at_ms >= 0) {
            long wait = restart_at_ms - monotonic_ms();
            if (wait < 0)
                wait = 0;
            timeout.sec = wait / 1000;
            timeout.nsec = (wait % 1000) * 1000000;
            tp = &timeout;
        }
        long ready = sys5(SYS_ppoll, fds, nfds, tp, 0, 8);
        if (ready < 0 && ready != -EINTR) {
            say("berth-anchor: poll failed\n");
            leave(1);
        }
        if (ready > 0 && fds[0].revents) {
            unsigned siginfo[32]; /* signalfd_siginfo: ssi_signo first */
            while (sys3(SYS_read, sigfd, siginfo, sizeof(siginfo)) == sizeof(siginfo)) {
                unsigned signo = siginfo[0];
                if (signo != SIGCHLD) {
                    quit_requested = 1;
                    if (supervisor_pid)
                        sys2(SYS_kill, supervisor_pid, SIGTERM);
                    else
                        leave(0);
                }
            }
            reap();
        }
        if (ready > 0 && nfds == 2 && channel >= 0 && fds[1].revents) {
            if (fds[1].revents & POLLIN)
                receive();
            if (channel >= 0 && (fds[1].revents & (POLLHUP | POLLERR)) && !(fds[1].revents & POLLIN))
                close_channel();
        }
        flush();
        if (!supervisor_pid && restart_at_ms >= 0 && monotonic_ms() >= restart_at_ms)
            start_supervisor();
    }
}
