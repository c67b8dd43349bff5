/*
 * berth's compiled client for its fork server: the same protocol as forkclient.py, without an
 * interpreter's start (~13 ms here: most of a served `berth run`'s client side).
 *
 * scripts/install builds it as the `berth` command when a C compiler is present (Mercurial's
 * chg does the same for its command server), with three definitions:
 *   BERTH_KEY_PREFIX  the bytes forkclient.key_prefix() returns: with /proc/self/cgroup after
 *                     them, they name this installation's socket
 *   BERTH_PYTHON      the virtual environment's interpreter
 *   BERTH_LAUNCHER    the Python launcher (berth.cli.entry), run whenever the server cannot run
 *                     the command: no server (the launcher starts one), a refusal, not root,
 *                     BERTH_NO_FORKSERVER set
 * each a brace list of byte values (the two paths ending in a 0), so no path needs quoting.
 * Everything else (which requests a server takes, what a worker does) is on the server's side.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#ifndef SYS_pidfd_send_signal
#define SYS_pidfd_send_signal 424
#endif

#define PROTOCOL "berth-fork-1"
#define RUN_DIR "/run/berth/forkserver"

extern char **environ;

static const unsigned char key_prefix[] = BERTH_KEY_PREFIX;
static char python[] = BERTH_PYTHON;
static char launcher[] = BERTH_LAUNCHER;
/* what the worker gets when this process gets it (as forkclient.FORWARDED) */
static const int forwarded[] = {
    SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH, SIGTSTP, SIGCONT,
};
#define NFORWARDED (sizeof forwarded / sizeof forwarded[0])

static volatile sig_atomic_t accepted;
static volatile sig_atomic_t worker = -1; /* a pidfd of the worker, with "A" */
static volatile sig_atomic_t pending[NSIG]; /* signals that came before "A" */
static int tracing;
static double last_mark;

static void mark(const char *name) {
    struct timespec now;
    char line[512];
    double at;
    int n;

    if (!tracing)
        return;
    clock_gettime(CLOCK_MONOTONIC, &now);
    at = now.tv_sec + now.tv_nsec / 1e9;
    n = snprintf(line, sizeof line, "berth-trace %.6f %7.2f ms  %s\n", at,
                 last_mark ? (at - last_mark) * 1000 : 0.0, name);
    last_mark = at;
    if (n > 0)
        (void)!write(2, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
}

/* Run the command in Python: the launcher handles every case this client does not. */
static void run_in_python(int argc, char **argv) {
    char **args = calloc((size_t)argc + 3, sizeof *args);
    int i;

    if (args) {
        args[0] = python;
        args[1] = "-S";
        args[2] = launcher;
        for (i = 1; i < argc; i++)
            args[i + 2] = argv[i];
        execv(python, args);
    }
    fprintf(stderr, "Error: cannot start berth's Python launcher %s with %s: %s\n"
            "Reinstall berth (scripts/install) to repair its virtual environment.\n",
            launcher, python, strerror(errno));
    exit(125);
}

static int socket_path(char *path, size_t size) {
    unsigned long long value = 0xcbf29ce484222325ULL;
    unsigned char chunk[4096];
    const char *directory = getenv("BERTH_FORKSERVER_DIR");
    ssize_t got;
    size_t i;
    int fd, n;

    for (i = 0; i < sizeof key_prefix; i++)
        value = (value ^ key_prefix[i]) * 0x100000001b3ULL;
    fd = open("/proc/self/cgroup", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        while ((got = read(fd, chunk, sizeof chunk)) > 0)
            for (i = 0; i < (size_t)got; i++)
                value = (value ^ chunk[i]) * 0x100000001b3ULL;
        close(fd);
    }
    n = snprintf(path, size, "%s/%016llx.sock", directory && *directory ? directory : RUN_DIR,
                 value);
    return n > 0 && (size_t)n < size ? 0 : -1;
}

static void send_signal(int signum) {
    if (worker >= 0)
        syscall(SYS_pidfd_send_signal, (int)worker, signum, NULL, 0);
}

static void forward(int signum) {
    int saved = errno;

    if (!accepted) {
        if (signum != SIGCONT)
            pending[signum] = 1;
    } else if (signum == SIGTSTP) {
        /* The worker's process group is the server's, orphaned: the kernel drops SIGTSTP
           there. So Ctrl-Z stops it with SIGSTOP, and this process after it. */
        send_signal(SIGSTOP);
        kill(getpid(), SIGSTOP);
    } else {
        send_signal(signum);
    }
    errno = saved;
}

static void block_forwarded(int how) {
    sigset_t set;
    size_t i;

    sigemptyset(&set);
    for (i = 0; i < NFORWARDED; i++)
        sigaddset(&set, forwarded[i]);
    sigprocmask(how, &set, NULL);
}

static void handle_signals(void) {
    struct sigaction action;
    size_t i;

    memset(&action, 0, sizeof action);
    action.sa_handler = forward;
    action.sa_flags = SA_RESTART;
    sigemptyset(&action.sa_mask);
    for (i = 0; i < NFORWARDED; i++)
        sigaddset(&action.sa_mask, forwarded[i]);
    for (i = 0; i < NFORWARDED; i++)
        sigaction(forwarded[i], &action, NULL);
}

/* The server said no (or is gone before it said yes): signals as before, those that came
   raised, and the command run in Python. */
static void refused(int sock, int argc, char **argv) {
    size_t i;

    close(sock);
    block_forwarded(SIG_BLOCK);
    for (i = 0; i < NFORWARDED; i++)
        signal(forwarded[i], SIG_DFL);
    for (i = 0; i < NFORWARDED; i++)
        if (pending[forwarded[i]])
            kill(getpid(), forwarded[i]);
    block_forwarded(SIG_UNBLOCK);
    run_in_python(argc, argv);
}

static void on_accepted(void) {
    int signum;

    block_forwarded(SIG_BLOCK);
    accepted = 1;
    for (signum = 1; signum < NSIG; signum++)
        if (pending[signum]) {
            pending[signum] = 0;
            forward(signum);
        }
    block_forwarded(SIG_UNBLOCK);
}

static void die_by(int signum) {
    sigset_t set;

    signal(signum, SIG_DFL);
    sigemptyset(&set);
    sigaddset(&set, signum);
    sigprocmask(SIG_UNBLOCK, &set, NULL);
    kill(getpid(), signum);
    _exit(128 + signum);
}

static int send_all(int sock, const char *data, size_t size) {
    ssize_t sent;

    while (size > 0) {
        sent = send(sock, data, size, MSG_NOSIGNAL);
        if (sent < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        data += sent;
        size -= (size_t)sent;
    }
    return 0;
}

/* The request: a 4-byte big-endian length, then NUL-separated fields (the protocol, the stdio
   fds sent, the number of arguments, the arguments, the environment); the fds as SCM_RIGHTS. */
static int send_request(int sock, int argc, char **argv) {
    int fds[3], nfds = 0, fd, i;
    char sent[4] = "", count[16];
    size_t size, at;
    char *data, **entry;
    struct msghdr message;
    struct iovec iov;
    union {
        char buffer[CMSG_SPACE(sizeof fds)];
        struct cmsghdr align;
    } control;
    struct cmsghdr *header;
    ssize_t first;

    for (fd = 0; fd < 3; fd++)
        if (fcntl(fd, F_GETFD) >= 0) {
            sent[nfds] = (char)('0' + fd);
            fds[nfds++] = fd;
        }
    snprintf(count, sizeof count, "%d", argc - 1);
    size = 4 + sizeof PROTOCOL + strlen(sent) + 1 + strlen(count);
    for (i = 1; i < argc; i++)
        size += 1 + strlen(argv[i]);
    for (entry = environ; *entry; entry++)
        if (strchr(*entry, '='))
            size += 1 + strlen(*entry);
    data = malloc(size);
    if (!data)
        return -1;
    at = 4;
#define FIELD(text) do { size_t n_ = strlen(text); memcpy(data + at, text, n_); at += n_; } while (0)
    FIELD(PROTOCOL);
    data[at++] = '\0';
    FIELD(sent);
    data[at++] = '\0';
    FIELD(count);
    for (i = 1; i < argc; i++) {
        data[at++] = '\0';
        FIELD(argv[i]);
    }
    for (entry = environ; *entry; entry++)
        if (strchr(*entry, '=')) {
            data[at++] = '\0';
            FIELD(*entry);
        }
#undef FIELD
    data[0] = (char)((size - 4) >> 24);
    data[1] = (char)((size - 4) >> 16);
    data[2] = (char)((size - 4) >> 8);
    data[3] = (char)(size - 4);

    memset(&message, 0, sizeof message);
    iov.iov_base = data;
    iov.iov_len = size;
    message.msg_iov = &iov;
    message.msg_iovlen = 1;
    if (nfds) {
        memset(&control, 0, sizeof control);
        message.msg_control = control.buffer;
        message.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)nfds);
        header = CMSG_FIRSTHDR(&message);
        header->cmsg_level = SOL_SOCKET;
        header->cmsg_type = SCM_RIGHTS;
        header->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)nfds);
        memcpy(CMSG_DATA(header), fds, sizeof(int) * (size_t)nfds);
    }
    do
        first = sendmsg(sock, &message, MSG_NOSIGNAL);
    while (first < 0 && errno == EINTR);
    if (first < 0 || send_all(sock, data + first, size - (size_t)first) < 0) {
        free(data);
        return -1;
    }
    free(data);
    return 0;
}

/* Read the server's lines until the command's status; returns only to run it in Python. */
static void follow(int sock, int argc, char **argv) {
    char buffer[4096];
    size_t used = 0;
    ssize_t got;
    char *newline;
    struct msghdr message;
    struct iovec iov;
    union {
        char buffer[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } control;
    struct cmsghdr *header;
    int fd;

    for (;;) {
        memset(&message, 0, sizeof message);
        iov.iov_base = buffer + used;
        iov.iov_len = sizeof buffer - 1 - used;
        message.msg_iov = &iov;
        message.msg_iovlen = 1;
        message.msg_control = control.buffer;
        message.msg_controllen = sizeof control.buffer;
        got = recvmsg(sock, &message, MSG_CMSG_CLOEXEC);
        if (got < 0 && errno == EINTR)
            continue;
        for (header = CMSG_FIRSTHDR(&message); got >= 0 && header;
             header = CMSG_NXTHDR(&message, header))
            if (header->cmsg_level == SOL_SOCKET && header->cmsg_type == SCM_RIGHTS) {
                memcpy(&fd, CMSG_DATA(header), sizeof fd);
                worker = fd;
            }
        if (got <= 0)
            break;
        used += (size_t)got;
        buffer[used] = '\0';
        while ((newline = memchr(buffer, '\n', used))) {
            *newline = '\0';
            switch (buffer[0]) {
            case 'A':
                on_accepted();
                break;
            case 'R':
                if (tracing) {
                    char line[256];
                    snprintf(line, sizeof line, "the fork server refused: %.200s", buffer + 1);
                    mark(line);
                }
                refused(sock, argc, argv);
                return;
            case 'X':
                mark("exiting");
                _exit(atoi(buffer + 1));
            case 'K':
                die_by(atoi(buffer + 1));
                break;
            }
            used -= (size_t)(newline + 1 - buffer);
            memmove(buffer, newline + 1, used);
        }
        if (used >= sizeof buffer - 1)
            break; /* no line fits: not our server */
    }
    if (!accepted) {
        refused(sock, argc, argv);
        return;
    }
    fputs("Error: the berth fork server running this command ended before the command did, "
          "so its outcome is unknown (BERTH_NO_FORKSERVER=1 runs each command in its own "
          "process)\n", stderr);
    _exit(125);
}

/* /dev/null on a closed fd 0, 1 or 2 (as berth.stdfds does): else the socket below would
   take that number and be sent as the command's stdio. */
static void ensure_standard_fds(void) {
    int fd, null;

    for (fd = 0; fd < 3; fd++)
        if (fcntl(fd, F_GETFD) < 0) {
            null = open("/dev/null", O_RDWR);
            if (null >= 0 && null != fd) {
                dup2(null, fd);
                close(null);
            }
        }
}

int main(int argc, char **argv) {
    struct sockaddr_un address;
    int sock;
    const char *off = getenv("BERTH_NO_FORKSERVER");

    ensure_standard_fds();
    tracing = getenv("BERTH_TRACE") && *getenv("BERTH_TRACE");
    mark("client started");
    if ((off && *off) || geteuid() != 0)
        run_in_python(argc, argv);
    memset(&address, 0, sizeof address);
    address.sun_family = AF_UNIX;
    if (socket_path(address.sun_path, sizeof address.sun_path) < 0)
        run_in_python(argc, argv);
    sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (sock < 0 || connect(sock, (struct sockaddr *)&address, sizeof address) < 0)
        run_in_python(argc, argv); /* no server: the launcher starts one for the next command */
    handle_signals();
    if (send_request(sock, argc, argv) < 0) {
        refused(sock, argc, argv);
        return 125;
    }
    follow(sock, argc, argv);
    return 125;
}
