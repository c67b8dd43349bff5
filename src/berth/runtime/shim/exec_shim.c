/*
 * berth's exec shim: the last program the runtime executes before the container's own.
 *
 * The runtime's container process is a forked Python interpreter, and /proc/PID/exe of a
 * process names the file it runs: the host's python binary. CVE-2019-5736 showed what a
 * container does with that (a "#!/proc/self/exe" entrypoint makes the kernel run the
 * runtime's own binary again, from which the container can reach and overwrite it). So the
 * runtime never execve()s the container's program itself: it executes this shim from a sealed
 * memfd (execveat(fd, "", ..., AT_EMPTY_PATH)), and the shim execve()s the program. While the
 * shim runs, /proc/PID/exe is that sealed, anonymous copy; after its execve, the program.
 *
 * Calling convention: argv[0] is MARKER, argv[1] the absolute path of the program, argv[2..]
 * the program's own argv (argv[2] is its argv[0]); the environment is passed as is.
 *
 * Anything else is refused with exit status 126: in particular a script whose interpreter is
 * "/proc/self/exe" run by the shim's execve() makes the kernel start the shim again with
 * argv[0] = "/proc/self/exe". The marker is longer than the kernel reads of a "#!" line (256
 * bytes), so no script can name it as its interpreter.
 *
 * Freestanding: no C library, two system calls (execve, write) and exit. Built by build.py
 * next to this file; the committed exec_shim.<arch>.bin files are its output.
 */

#define MARKER_PREFIX "berth-exec-shim:"
/* MARKER is MARKER_PREFIX followed by MARKER_PAD dots; build.py and process.py agree on it */
#ifndef MARKER_PAD
#define MARKER_PAD 300
#endif

typedef unsigned long size_t;

#if defined(__x86_64__)
#define SYS_write 1
#define SYS_execve 59
#define SYS_exit_group 231
__asm__(
    ".text\n"
    ".global _start\n"
    "_start:\n"
    "    mov %rsp, %rdi\n"
    "    and $-16, %rsp\n"
    "    call shim_main\n"
    "    hlt\n");

static long sys3(long n, long a, long b, long c)
{
    long ret;
    __asm__ volatile("syscall"
                     : "=a"(ret)
                     : "a"(n), "D"(a), "S"(b), "d"(c)
                     : "rcx", "r11", "memory");
    return ret;
}
#elif defined(__aarch64__)
#define SYS_write 64
#define SYS_execve 221
#define SYS_exit_group 94
__asm__(
    ".text\n"
    ".global _start\n"
    "_start:\n"
    "    mov x0, sp\n"
    "    bl shim_main\n"
    "    brk #0\n");

static long sys3(long n, long a, long b, long c)
{
    register long x8 __asm__("x8") = n;
    register long x0 __asm__("x0") = a;
    register long x1 __asm__("x1") = b;
    register long x2 __asm__("x2") = c;
    __asm__ volatile("svc #0" : "+r"(x0) : "r"(x8), "r"(x1), "r"(x2) : "memory");
    return x0;
}
#else
#error "exec shim: unsupported architecture"
#endif

static size_t length(const char *s)
{
    size_t n = 0;
    while (s[n])
        n++;
    return n;
}

static void say(const char *s)
{
    sys3(SYS_write, 2, (long)s, (long)length(s));
}

static __attribute__((noreturn)) void leave(int code)
{
    for (;;)
        sys3(SYS_exit_group, code, 0, 0);
}

static int is_marker(const char *s)
{
    const char *prefix = MARKER_PREFIX;
    size_t i = 0;
    for (; prefix[i]; i++)
        if (s[i] != prefix[i])
            return 0;
    for (size_t pad = 0; pad < MARKER_PAD; pad++, i++)
        if (s[i] != '.')
            return 0;
    return s[i] == 0;
}

static const char *reason(long err)
{
    switch (err) {
    case 1: return "operation not permitted";
    case 2: return "no such file or directory";
    case 7: return "argument list too long";
    case 8: return "exec format error";
    case 12: return "cannot allocate memory";
    case 13: return "permission denied";
    case 20: return "not a directory";
    case 21: return "is a directory";
    case 26: return "text file busy";
    case 36: return "file name too long";
    case 40: return "too many levels of symbolic links";
    default: return "cannot execute";
    }
}

__attribute__((noreturn, used)) void shim_main(long *sp)
{
    long argc = sp[0];
    char **argv = (char **)(sp + 1);
    char **envp = argv + argc + 1;

    if (argc < 3 || !is_marker(argv[0])) {
        say("berth: cannot execute: the runtime's exec shim was started by something other "
            "than the runtime (a \"#!/proc/self/exe\" script?): refusing\n");
        leave(126);
    }
    long err = -sys3(SYS_execve, (long)argv[1], (long)(argv + 2), (long)envp);
    say("berth: exec ");
    say(argv[1]);
    say(": ");
    say(reason(err));
    say("\n");
    leave(err == 2 ? 127 : 126);
}
