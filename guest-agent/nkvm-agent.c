/*
 * nkvm-agent: the guest side of node-kvm's exec channel (lib/testing/agent-protocol.ts is the
 * host side and the reference for the wire format). Built static at image-build time
 * (gcc -static -Os) and started by the default image's /init on the virtio-console port named
 * org.nodekvm.agent.0.
 *
 *   nkvm-agent                  find the port by name in /sys/class/virtio-ports/ (waits for it)
 *   nkvm-agent --port NAME      another port name
 *   nkvm-agent --stdio          talk over stdin/stdout (host-side tests)
 *   nkvm-agent PATH             a device or FIFO path opened read-write
 *
 * Frames, both ways: [u32 payload length][u8 type][u32 id][payload], little endian. One
 * single-threaded poll() loop serves every request: commands run in their own session (so a
 * kill reaches their whole process group), their stdout and stderr are read as they come and
 * queued to the host; while the queue to the host is above OUT_HIGH nothing more is read from
 * children or files, so a host that stops reading stops the writers instead of filling memory.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/timex.h>
#include <sys/wait.h>
#include <unistd.h>

#define PROTOCOL_VERSION 1
#define HDR 9
#define DEFAULT_PORT "org.nodekvm.agent.0"
/* Largest request accepted (an exec with a long script); larger ones are skipped with EMSGSIZE. */
#define MAX_IN_FRAME (16u << 20)
/* Data frames we send carry at most this much (64 KiB with the header: one read into a stack
 * buffer; the host takes up to 1 MiB per frame). Many go to the host in one spliced buffer. */
#define CHUNK (65536 - HDR)
/* Stop reading children and files while this much waits for the host (as much as one splice
 * takes, so a file or a fast command's output goes in buffers of that size). */
#define OUT_HIGH (1u << 20)
/* A virtio port takes at most 32 KiB per write() and costs the host a doorbell (a guest exit
 * and an event-loop turn) for each. Spliced from a pipe, everything the pipe holds goes as one
 * buffer: frames are written into this pipe and spliced to the port, up to 1 MiB (256 pages,
 * the port queue's size) per doorbell. */
#define VIA_SIZE (1u << 20)
/* Stdin bytes a command may have pending; the host's window is smaller (agent-protocol.ts). */
#define STDIN_MAX (4u << 20)
/* A shell command longer than this does not fit one exec argument (MAX_ARG_STRLEN is 128 KiB):
 * it runs from a memfd instead. */
#define ARG_MAX_INLINE (100u * 1024)
/* After a command exits, what is left in its pipes (written by it or by children it left
 * behind) is read up to this much, then the pipe is closed. */
#define DRAIN_MAX (1u << 20)

enum {
  /* host -> guest */
  T_EXEC = 0x01, T_STDIN = 0x02, T_STDIN_EOF = 0x03, T_KILL = 0x04,
  T_WRITE_OPEN = 0x05, T_WRITE_DATA = 0x06, T_WRITE_END = 0x07, T_READ_OPEN = 0x08, T_SYNC = 0x09,
  T_CLOCK_ADVANCE = 0x0a,
  /* guest -> host */
  T_HELLO = 0x81, T_STDOUT = 0x82, T_STDERR = 0x83, T_EXIT = 0x84, T_ERROR = 0x85,
  T_OK = 0x86, T_READ_DATA = 0x87, T_READ_EOF = 0x88, T_STDIN_ACK = 0x89,
};

enum { EXEC_STDIN = 1, EXEC_SHELL = 2 };
enum { JOB_EXEC, JOB_WRITE, JOB_READ };

struct job {
  struct job *next;
  uint32_t id;
  int kind;
  /* exec */
  pid_t pid;
  int out, err, in; /* -1 when closed */
  size_t drained[2];
  char *inq;
  size_t inlen, inoff;
  int in_eof; /* the host sent STDIN_EOF */
  int exited, status;
  /* write/read: the file */
  int fd;
};

static int port_in = -1, port_out = -1, sigfd = -1;
static int port_is_stdio;
static struct job *jobs;
static unsigned char *outq;
static size_t outlen, outoff, outcap;
/* The pipe frames pass through on their way to a virtio port (-1: plain write()), and how many
 * of their bytes it holds. */
static int via[2] = {-1, -1};
static size_t in_via, via_size;
static unsigned char *inbuf;
static size_t inlen, incap;
static size_t skip_left; /* bytes of an oversized frame still to discard */
/* Until the host's SYNC frame arrives, input is discarded: whatever a previous agent left
 * half-read in the port (or the host sent before it saw our HELLO) cannot be parsed as frames. */
static int synced;
#define SYNC_MAGIC "NKVM-HOST-SYNC!!"
static const unsigned char sync_frame[HDR + 16] = {16, 0, 0, 0, T_SYNC, 0, 0, 0, 0, 'N', 'K', 'V', 'M', '-', 'H', 'O', 'S', 'T', '-', 'S', 'Y', 'N', 'C', '!', '!'};

static void die(const char *what) {
  fprintf(stderr, "nkvm-agent: %s: %s\n", what, strerror(errno));
  exit(1);
}

static void *xrealloc(void *p, size_t n) {
  void *q = realloc(p, n);
  if (q == NULL && n != 0) {
    errno = ENOMEM;
    die("realloc");
  }
  return q;
}

static void put32(unsigned char *p, uint32_t v) {
  p[0] = v; p[1] = v >> 8; p[2] = v >> 16; p[3] = v >> 24;
}
static uint32_t get32(const unsigned char *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static size_t pending_out(void) { return outlen - outoff + in_via; }

/* Queue one frame for the host (always accepted: callers that produce data check OUT_HIGH). */
static void send_frame(int type, uint32_t id, const void *data, size_t len) {
  if (outoff > 0 && outoff == outlen) outoff = outlen = 0;
  if (outlen + HDR + len > outcap) {
    if (outoff > 0) {
      memmove(outq, outq + outoff, outlen - outoff);
      outlen -= outoff;
      outoff = 0;
    }
    if (outlen + HDR + len > outcap) {
      outcap = (outlen + HDR + len) * 2;
      outq = xrealloc(outq, outcap);
    }
  }
  unsigned char *h = outq + outlen;
  put32(h, (uint32_t)len);
  h[4] = (unsigned char)type;
  put32(h + 5, id);
  if (len > 0) memcpy(h + HDR, data, len);
  outlen += HDR + len;
}

static void send_error(uint32_t id, int err, const char *fmt, const char *arg) {
  char msg[512];
  unsigned char buf[4 + sizeof msg];
  snprintf(msg, sizeof msg, fmt, arg, strerror(err));
  put32(buf, (uint32_t)err);
  size_t n = strlen(msg);
  memcpy(buf + 4, msg, n);
  send_frame(T_ERROR, id, buf, 4 + n);
}

/* Frames from the out queue into the pipe, as many bytes as it has room for. */
static void fill_via(void) {
  while (outlen > outoff && in_via < via_size) {
    size_t want = outlen - outoff;
    if (want > via_size - in_via) want = via_size - in_via;
    ssize_t n = write(via[1], outq + outoff, want);
    if (n > 0) {
      outoff += (size_t)n;
      in_via += (size_t)n;
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    return; /* full (EAGAIN): the pipe's pages hold less than we counted on */
  }
}

/* The port cannot splice (EINVAL): take back what the pipe holds, ahead of the out queue, and
 * write from now on. */
static void stop_splicing(void) {
  size_t queued = outlen - outoff;
  unsigned char *q = xrealloc(NULL, in_via + queued + 1);
  size_t got = 0;
  while (got < in_via) {
    ssize_t n = read(via[0], q + got, in_via - got);
    if (n > 0) got += (size_t)n;
    else if (n < 0 && errno == EINTR) continue;
    else break;
  }
  memcpy(q + got, outq + outoff, queued);
  free(outq);
  outq = q;
  outoff = 0;
  outlen = got + queued;
  outcap = in_via + queued + 1;
  close(via[0]);
  close(via[1]);
  via[0] = via[1] = -1;
  in_via = 0;
}

static void flush_out(void) {
  while (pending_out() > 0) {
    ssize_t n;
    if (via[0] >= 0) {
      fill_via();
      n = splice(via[0], NULL, port_out, NULL, in_via, SPLICE_F_NONBLOCK);
      if (n > 0) {
        in_via -= (size_t)n;
        continue;
      }
      if (n < 0 && errno == EINVAL) {
        stop_splicing();
        continue;
      }
      if (n == 0) return; /* the port took nothing: retry on the next POLLOUT */
    } else {
      n = write(port_out, outq + outoff, outlen - outoff);
      if (n > 0) {
        outoff += (size_t)n;
        continue;
      }
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    if (port_is_stdio) exit(0); /* the host went away */
    return; /* a port whose host side is closed: retry on the next POLLOUT */
  }
}

/* Send through a pipe of VIA_SIZE when the kernel gives us one that big (else write()). */
static void start_splicing(void) {
  if (pipe2(via, O_NONBLOCK | O_CLOEXEC) < 0) {
    via[0] = via[1] = -1;
    return;
  }
  int got = fcntl(via[1], F_SETPIPE_SZ, VIA_SIZE);
  if (got < (int)VIA_SIZE) {
    close(via[0]);
    close(via[1]);
    via[0] = via[1] = -1;
    return;
  }
  via_size = (size_t)got;
}

static struct job *find_job(uint32_t id) {
  for (struct job *j = jobs; j != NULL; j = j->next)
    if (j->id == id) return j;
  return NULL;
}

static struct job *new_job(uint32_t id, int kind) {
  struct job *j = calloc(1, sizeof *j);
  if (j == NULL) die("calloc");
  j->id = id;
  j->kind = kind;
  j->out = j->err = j->in = j->fd = -1;
  j->next = jobs;
  jobs = j;
  return j;
}

static void close_fd(int *fd) {
  if (*fd >= 0) close(*fd);
  *fd = -1;
}

static void free_job(struct job *j) {
  for (struct job **p = &jobs; *p != NULL; p = &(*p)->next) {
    if (*p == j) {
      *p = j->next;
      break;
    }
  }
  close_fd(&j->out);
  close_fd(&j->err);
  close_fd(&j->in);
  close_fd(&j->fd);
  free(j->inq);
  free(j);
}

static void set_nonblock(int fd) {
  int fl = fcntl(fd, F_GETFL);
  if (fl >= 0) fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

/* ---- exec ---------------------------------------------------------------------------------- */

/* The request: [u8 flags][u32 argc][u32 envc] then NUL-terminated cwd, argv..., env... */
static void start_exec(uint32_t id, const unsigned char *p, size_t len) {
  if (find_job(id) != NULL) {
    send_error(id, EEXIST, "exec: request id in use%s (%s)", "");
    return;
  }
  if (len < 9) {
    send_error(id, EPROTO, "exec: short request%s (%s)", "");
    return;
  }
  unsigned flags = p[0];
  uint32_t argc = get32(p + 1), envc = get32(p + 5);
  /* Every string needs at least its NUL byte, which bounds the counts by the length. */
  if (argc == 0 || argc > len || envc > len || (uint64_t)argc + envc + 1 > len - 9 || p[len - 1] != 0) {
    send_error(id, EPROTO, "exec: malformed request%s (%s)", "");
    return;
  }
  char **strs = calloc((size_t)argc + envc + 2, sizeof *strs);
  if (strs == NULL) die("calloc");
  const char *s = (const char *)p + 9, *end = (const char *)p + len;
  for (uint32_t i = 0; i < argc + envc + 1; i++) {
    if (s >= end) {
      free(strs);
      send_error(id, EPROTO, "exec: malformed request%s (%s)", "");
      return;
    }
    strs[i] = (char *)s;
    s += strlen(s) + 1;
  }
  const char *cwd = strs[0];
  char **argv = strs + 1;
  char **env = strs + 1 + argc;
  int shell = (flags & EXEC_SHELL) != 0;
  if (shell && argc != 1) {
    free(strs);
    send_error(id, EPROTO, "exec: a shell command is one string%s (%s)", "");
    return;
  }

  int po[2] = {-1, -1}, pe[2] = {-1, -1}, pi[2] = {-1, -1};
  if (pipe2(po, O_CLOEXEC) < 0 || pipe2(pe, O_CLOEXEC) < 0 || ((flags & EXEC_STDIN) && pipe2(pi, O_CLOEXEC) < 0)) {
    int e = errno;
    close_fd(&po[0]); close_fd(&po[1]); close_fd(&pe[0]); close_fd(&pe[1]); close_fd(&pi[0]); close_fd(&pi[1]);
    free(strs);
    send_error(id, e, "exec: pipe%s: %s", "");
    return;
  }
  /* A command that writes fast fills as much as one splice to the host takes before it waits. */
  (void)fcntl(po[1], F_SETPIPE_SZ, VIA_SIZE);
  pid_t pid = fork();
  if (pid < 0) {
    int e = errno;
    close_fd(&po[0]); close_fd(&po[1]); close_fd(&pe[0]); close_fd(&pe[1]); close_fd(&pi[0]); close_fd(&pi[1]);
    free(strs);
    send_error(id, e, "exec: fork%s: %s", "");
    return;
  }
  if (pid == 0) {
    /* The child: its own session and process group, default signals, the pipes as stdio. */
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    signal(SIGPIPE, SIG_DFL);
    setsid();
    int in = (flags & EXEC_STDIN) ? pi[0] : open("/dev/null", O_RDONLY);
    if (in < 0 || dup2(in, 0) < 0 || dup2(po[1], 1) < 0 || dup2(pe[1], 2) < 0) _exit(126);
    if (cwd[0] != 0 && chdir(cwd) < 0) {
      dprintf(2, "nkvm-agent: cd %s: %s\n", cwd, strerror(errno));
      _exit(125);
    }
    for (uint32_t i = 0; i < envc; i++) putenv(env[i]);
    if (shell && strlen(argv[0]) > ARG_MAX_INLINE) {
      int m = memfd_create("nkvm-command", 0);
      size_t n = strlen(argv[0]), off = 0;
      while (m >= 0 && off < n) {
        ssize_t w = write(m, argv[0] + off, n - off);
        if (w <= 0) _exit(126);
        off += (size_t)w;
      }
      if (m < 0 || lseek(m, 0, SEEK_SET) < 0) {
        dprintf(2, "nkvm-agent: memfd for a %zu-byte command: %s\n", n, strerror(errno));
        _exit(126);
      }
      char path[64];
      snprintf(path, sizeof path, "/proc/self/fd/%d", m);
      execl("/bin/sh", "sh", path, (char *)NULL);
    } else if (shell) {
      execl("/bin/sh", "sh", "-c", argv[0], (char *)NULL);
    } else {
      execvp(argv[0], argv);
    }
    int e = errno;
    dprintf(2, "nkvm-agent: %s: %s\n", shell ? "/bin/sh" : argv[0], strerror(e));
    _exit(e == ENOENT ? 127 : 126);
  }
  free(strs);
  close(po[1]);
  close(pe[1]);
  if (pi[0] >= 0) close(pi[0]);
  struct job *j = new_job(id, JOB_EXEC);
  j->pid = pid;
  j->out = po[0];
  j->err = pe[0];
  j->in = pi[1];
  set_nonblock(j->out);
  set_nonblock(j->err);
  if (j->in >= 0) set_nonblock(j->in);
}

static void exec_stdin(struct job *j, const unsigned char *p, size_t len) {
  unsigned char ack[4];
  if (j->in < 0 || j->in_eof || j->inlen - j->inoff + len > STDIN_MAX) {
    /* Nobody reads it any more (or the host broke the window): drop it, and say it was
     * consumed so the host's sender never waits for credit that cannot come. */
    put32(ack, (uint32_t)len);
    send_frame(T_STDIN_ACK, j->id, ack, 4);
    return;
  }
  if (j->inoff > 0) { /* keep only what is pending, so the buffer stays within STDIN_MAX */
    memmove(j->inq, j->inq + j->inoff, j->inlen - j->inoff);
    j->inlen -= j->inoff;
    j->inoff = 0;
  }
  j->inq = xrealloc(j->inq, j->inlen + len);
  memcpy(j->inq + j->inlen, p, len);
  j->inlen += len;
}

/* Write what stdin has pending; ack what went into the pipe. */
static void pump_stdin(struct job *j) {
  size_t done = 0;
  while (j->in >= 0 && j->inoff < j->inlen) {
    ssize_t n = write(j->in, j->inq + j->inoff, j->inlen - j->inoff);
    if (n > 0) {
      j->inoff += (size_t)n;
      done += (size_t)n;
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    /* EPIPE: the command closed its stdin. Everything pending counts as consumed. */
    done += j->inlen - j->inoff;
    j->inoff = j->inlen;
    close_fd(&j->in);
  }
  if (j->in >= 0 && j->in_eof && j->inoff == j->inlen) close_fd(&j->in);
  if (done > 0) {
    unsigned char ack[4];
    put32(ack, (uint32_t)done);
    send_frame(T_STDIN_ACK, j->id, ack, 4);
  }
}

/* Read one chunk of a command's stdout or stderr; returns 0 when that pipe is finished, 2
 * when it read something and the pipe stays open. */
static int read_output(struct job *j, int which) {
  int *fd = which == 0 ? &j->out : &j->err;
  unsigned char buf[CHUNK];
  ssize_t n = read(*fd, buf, sizeof buf);
  if (n > 0) {
    send_frame(which == 0 ? T_STDOUT : T_STDERR, j->id, buf, (size_t)n);
    if (j->exited) {
      j->drained[which] += (size_t)n;
      if (j->drained[which] >= DRAIN_MAX) close_fd(fd);
    }
    return *fd >= 0 ? 2 : 0;
  }
  if (n < 0 && errno == EINTR) return 1;
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) && !j->exited) return 1;
  close_fd(fd); /* EOF, an error, or nothing left after the command exited */
  return 0;
}

static void finish_exec_if_done(struct job *j) {
  if (!j->exited || j->out >= 0 || j->err >= 0) return;
  unsigned char buf[5];
  if (WIFSIGNALED(j->status)) {
    buf[0] = 1;
    put32(buf + 1, (uint32_t)WTERMSIG(j->status));
  } else {
    buf[0] = 0;
    put32(buf + 1, (uint32_t)WEXITSTATUS(j->status));
  }
  send_frame(T_EXIT, j->id, buf, 5);
  free_job(j);
}

static void reap(void) {
  struct signalfd_siginfo si;
  while (read(sigfd, &si, sizeof si) > 0) {
  }
  for (;;) {
    int st;
    pid_t pid = waitpid(-1, &st, WNOHANG);
    if (pid <= 0) break;
    for (struct job *j = jobs; j != NULL; j = j->next) {
      if (j->kind == JOB_EXEC && j->pid == pid && !j->exited) {
        j->exited = 1;
        j->status = st;
        close_fd(&j->in);
      }
    }
  }
}

/* ---- files --------------------------------------------------------------------------------- */

/* [u8 has mode][u32 mode] path NUL */
static void write_open(uint32_t id, const unsigned char *p, size_t len) {
  if (find_job(id) != NULL || len < 6 || p[len - 1] != 0 || memchr(p + 5, 0, len - 5) != p + len - 1) {
    send_error(id, EPROTO, "writeFile: malformed request%s (%s)", "");
    return;
  }
  const char *path = (const char *)p + 5;
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
  if (fd < 0) {
    send_error(id, errno, "open %s: %s", path);
    return;
  }
  if (p[0] && fchmod(fd, get32(p + 1) & 07777) < 0) {
    send_error(id, errno, "chmod %s: %s", path);
    close(fd);
    return;
  }
  new_job(id, JOB_WRITE)->fd = fd;
}

static void write_data(struct job *j, const unsigned char *p, size_t len) {
  while (len > 0) {
    ssize_t n = write(j->fd, p, len);
    if (n > 0) {
      p += n;
      len -= (size_t)n;
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    send_error(j->id, n < 0 ? errno : EIO, "write%s: %s", "");
    free_job(j);
    return;
  }
}

static void write_end(struct job *j) {
  if (close(j->fd) < 0) {
    j->fd = -1;
    send_error(j->id, errno, "close%s: %s", "");
  } else {
    j->fd = -1;
    send_frame(T_OK, j->id, NULL, 0);
  }
  free_job(j);
}

/* path NUL; answers OK [u64 size, all ones when not a regular file], then data, then EOF. */
static void read_open(uint32_t id, const unsigned char *p, size_t len) {
  if (find_job(id) != NULL || len < 2 || memchr(p, 0, len) != p + len - 1) {
    send_error(id, EPROTO, "readFile: malformed request%s (%s)", "");
    return;
  }
  const char *path = (const char *)p;
  int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  struct stat st;
  if (fd < 0 || fstat(fd, &st) < 0) {
    send_error(id, errno, "open %s: %s", path);
    if (fd >= 0) close(fd);
    return;
  }
  if (S_ISDIR(st.st_mode)) {
    close(fd);
    send_error(id, EISDIR, "open %s: %s", path);
    return;
  }
  uint64_t size = S_ISREG(st.st_mode) ? (uint64_t)st.st_size : UINT64_MAX;
  unsigned char b[8];
  put32(b, (uint32_t)size);
  put32(b + 4, (uint32_t)(size >> 32));
  send_frame(T_OK, id, b, 8);
  new_job(id, JOB_READ)->fd = fd;
}

/* Read the file while the host's queue has room (a regular file never says EAGAIN). */
static void read_chunk(struct job *j) {
  unsigned char buf[CHUNK];
  while (pending_out() < OUT_HIGH) {
    ssize_t n = read(j->fd, buf, sizeof buf);
    if (n > 0) {
      send_frame(T_READ_DATA, j->id, buf, (size_t)n);
    } else if (n == 0) {
      send_frame(T_READ_EOF, j->id, NULL, 0);
      free_job(j);
      return;
    } else if (errno == EINTR) {
      continue;
    } else {
      if (errno != EAGAIN) {
        send_error(j->id, errno, "read%s: %s", "");
        free_job(j);
      }
      return;
    }
  }
}

/* ---- requests ------------------------------------------------------------------------------ */

/*
 * CLOCK_ADVANCE [i64 microseconds]: add that much to the wall clock in one step
 * (ADJ_SETOFFSET), as a guest restored from a snapshot must: its clock resumed where the
 * snapshot left it. Done here rather than by a command: in a fresh copy of a guest every
 * process started first faults in its pages, which costs more than the request.
 */
static void clock_advance(uint32_t id, const unsigned char *p, size_t len) {
  if (len != 8) {
    send_error(id, EPROTO, "clock: malformed request%s (%s)", "");
    return;
  }
  int64_t us = (int64_t)((uint64_t)get32(p) | ((uint64_t)get32(p + 4) << 32));
  struct timex tx;
  memset(&tx, 0, sizeof tx);
  /* Microseconds, not ADJ_NANO: that mode would stay set (STA_NANO) and every later adjtimex
   * reader would get nanoseconds in time.tv_usec. */
  tx.modes = ADJ_SETOFFSET;
  /* The sub-second part must be in [0, 1e6): a negative offset borrows a second. */
  int64_t sec = us / 1000000, rem = us % 1000000;
  if (rem < 0) { sec -= 1; rem += 1000000; }
  tx.time.tv_sec = (time_t)sec;
  tx.time.tv_usec = (long)rem;
  if (adjtimex(&tx) < 0) {
    send_error(id, errno, "clock%s: %s", "");
    return;
  }
  send_frame(T_OK, id, NULL, 0);
}

static void handle_frame(int type, uint32_t id, const unsigned char *p, size_t len) {
  struct job *j = find_job(id);
  switch (type) {
    case T_EXEC:
      start_exec(id, p, len);
      break;
    case T_STDIN:
      if (j != NULL && j->kind == JOB_EXEC) exec_stdin(j, p, len);
      else if (j == NULL && len > 0) { /* a command that already ended: still ack */
        unsigned char ack[4];
        put32(ack, (uint32_t)len);
        send_frame(T_STDIN_ACK, id, ack, 4);
      }
      break;
    case T_STDIN_EOF:
      if (j != NULL && j->kind == JOB_EXEC) j->in_eof = 1;
      break;
    case T_KILL:
      if (j == NULL) break;
      if (j->kind == JOB_EXEC) {
        /* The group may not exist yet if the child has not reached setsid(): kill it by pid too. */
        if (!j->exited && kill(-j->pid, SIGKILL) < 0) kill(j->pid, SIGKILL);
      } else {
        send_error(id, ECANCELED, "cancelled%s (%s)", "");
        free_job(j);
      }
      break;
    case T_WRITE_OPEN:
      write_open(id, p, len);
      break;
    case T_WRITE_DATA:
      if (j != NULL && j->kind == JOB_WRITE) write_data(j, p, len);
      break;
    case T_WRITE_END:
      if (j != NULL && j->kind == JOB_WRITE) write_end(j);
      break;
    case T_READ_OPEN:
      read_open(id, p, len);
      break;
    case T_CLOCK_ADVANCE:
      clock_advance(id, p, len);
      break;
    case T_SYNC:
      break; /* a repeated SYNC changes nothing */
    default:
      send_error(id, EPROTO, "unknown frame type%s (%s)", "");
  }
}

static void read_port(void) {
  for (int round = 0; round < 16; round++) {
    if (incap - inlen < CHUNK) {
      incap = incap * 2 + CHUNK;
      inbuf = xrealloc(inbuf, incap);
    }
    ssize_t n = read(port_in, inbuf + inlen, incap - inlen);
    if (n == 0) {
      if (port_is_stdio) exit(0);
      /* A virtio port reads 0 while the host side is not connected: wait for it. */
      usleep(100000);
      return;
    }
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;
      if (port_is_stdio) die("read");
      usleep(100000);
      return;
    }
    inlen += (size_t)n;
    size_t off = 0;
    if (!synced) {
      unsigned char *at = memmem(inbuf, inlen, sync_frame, sizeof sync_frame);
      if (at == NULL) {
        /* Keep a tail that may be the start of the SYNC frame. */
        size_t keep = inlen < sizeof sync_frame - 1 ? inlen : sizeof sync_frame - 1;
        memmove(inbuf, inbuf + inlen - keep, keep);
        inlen = keep;
        continue;
      }
      off = (size_t)(at - inbuf) + sizeof sync_frame;
      synced = 1;
    }
    for (;;) {
      if (skip_left > 0) {
        size_t k = inlen - off < skip_left ? inlen - off : skip_left;
        off += k;
        skip_left -= k;
        if (skip_left > 0) break;
      }
      if (inlen - off < HDR) break;
      const unsigned char *h = inbuf + off;
      uint32_t len = get32(h), id = get32(h + 5);
      if (len > MAX_IN_FRAME) {
        send_error(id, EMSGSIZE, "request of %s bytes is too large (%s)", "more than 16 MiB");
        off += HDR;
        skip_left = len;
        continue;
      }
      if (inlen - off < HDR + (size_t)len) {
        /* Wait for the rest; make room for the whole frame at once. */
        if (off == 0 && incap < HDR + (size_t)len) {
          incap = HDR + (size_t)len;
          inbuf = xrealloc(inbuf, incap);
        }
        break;
      }
      handle_frame(h[4], id, h + HDR, len);
      off += HDR + len;
    }
    if (off > 0) {
      memmove(inbuf, inbuf + off, inlen - off);
      inlen -= off;
    }
    /* A large request's buffer is not kept around. */
    if (inlen == 0 && incap > (1u << 20)) {
      free(inbuf);
      inbuf = NULL;
      incap = 0;
    }
  }
}

/* ---- finding the port ---------------------------------------------------------------------- */

static int open_named_port(const char *name) {
  DIR *d = opendir("/sys/class/virtio-ports");
  if (d == NULL) return -1;
  struct dirent *e;
  int fd = -1;
  while ((e = readdir(d)) != NULL && fd < 0) {
    if (e->d_name[0] == '.') continue;
    char path[512], got[256];
    snprintf(path, sizeof path, "/sys/class/virtio-ports/%s/name", e->d_name);
    FILE *f = fopen(path, "r");
    if (f == NULL) continue;
    size_t n = fread(got, 1, sizeof got - 1, f);
    fclose(f);
    got[n] = 0;
    while (n > 0 && (got[n - 1] == '\n' || got[n - 1] == 0)) got[--n] = 0;
    if (strcmp(got, name) != 0) continue;
    snprintf(path, sizeof path, "/dev/%s", e->d_name);
    fd = open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) fprintf(stderr, "nkvm-agent: open %s: %s\n", path, strerror(errno));
  }
  closedir(d);
  return fd;
}

int main(int argc, char **argv) {
  const char *name = DEFAULT_PORT, *path = NULL;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--stdio") == 0) port_is_stdio = 1;
    else if (strcmp(argv[i], "--port") == 0 && i + 1 < argc) name = argv[++i];
    else if (argv[i][0] != '-') path = argv[i];
    else {
      fprintf(stderr, "usage: nkvm-agent [--stdio | --port NAME | PATH]\n");
      return 64;
    }
  }
  if (port_is_stdio) {
    port_in = 0;
    port_out = 1;
    set_nonblock(0);
    set_nonblock(1);
  } else {
    int fd;
    if (path != NULL) {
      fd = open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC);
      if (fd < 0) die(path);
    } else {
      /* Ports appear after virtio_console has probed (a workqueue, after insmod returns) and
       * can be hot-added: wait for ours, checking less often as time goes by. */
      unsigned wait_us = 20000;
      while ((fd = open_named_port(name)) < 0) {
        usleep(wait_us);
        if (wait_us < 1000000) wait_us += wait_us / 2;
      }
    }
    port_in = port_out = fd;
    start_splicing();
  }
  signal(SIGPIPE, SIG_IGN);
  sigset_t chld;
  sigemptyset(&chld);
  sigaddset(&chld, SIGCHLD);
  sigprocmask(SIG_BLOCK, &chld, NULL);
  sigfd = signalfd(-1, &chld, SFD_NONBLOCK | SFD_CLOEXEC);
  if (sigfd < 0) die("signalfd");
  const char *home = getenv("HOME");
  if (home == NULL || chdir(home) < 0) chdir("/");

  unsigned char hello[20];
  memcpy(hello, "NKVM-AGENT-HELLO", 16);
  put32(hello + 16, PROTOCOL_VERSION);
  send_frame(T_HELLO, 0, hello, sizeof hello);

  for (;;) {
    size_t nj = 0;
    for (struct job *j = jobs; j != NULL; j = j->next) nj++;
    struct pollfd *pf = calloc(2 + 3 * nj, sizeof *pf);
    struct job **owner = calloc(2 + 3 * nj, sizeof *owner);
    if (pf == NULL || owner == NULL) die("calloc");
    int roomy = pending_out() < OUT_HIGH, timeout = -1, n = 0;
    pf[n++] = (struct pollfd){ .fd = port_in, .events = POLLIN };
    if (pending_out() > 0) {
      if (port_out == port_in) pf[0].events |= POLLOUT;
      else pf[n++] = (struct pollfd){ .fd = port_out, .events = POLLOUT };
    }
    pf[n++] = (struct pollfd){ .fd = sigfd, .events = POLLIN };
    int fixed = n;
    for (struct job *j = jobs; j != NULL; j = j->next) {
      if (j->kind == JOB_EXEC) {
        if (j->exited && roomy) timeout = 0; /* drain without waiting for POLLIN */
        if (roomy && j->out >= 0) { owner[n] = j; pf[n++] = (struct pollfd){ .fd = j->out, .events = POLLIN }; }
        if (roomy && j->err >= 0) { owner[n] = j; pf[n++] = (struct pollfd){ .fd = j->err, .events = POLLIN }; }
        if (j->in >= 0 && j->inoff < j->inlen) { owner[n] = j; pf[n++] = (struct pollfd){ .fd = j->in, .events = POLLOUT }; }
      } else if (j->kind == JOB_READ && roomy) {
        owner[n] = j;
        pf[n++] = (struct pollfd){ .fd = j->fd, .events = POLLIN };
      }
    }
    int r = poll(pf, (nfds_t)n, timeout);
    if (r < 0 && errno != EINTR) die("poll");
    if (r > 0) {
      for (int i = 0; i < fixed; i++) {
        if (pf[i].revents & POLLOUT) flush_out();
        if (pf[i].fd == sigfd && (pf[i].revents & POLLIN)) reap();
        if (pf[i].fd == port_in && (pf[i].revents & (POLLIN | POLLHUP | POLLERR))) read_port();
      }
      /* A handler above may have freed jobs: act only on fds whose job is still listed. */
      for (int i = fixed; i < n; i++) {
        struct job *j = owner[i];
        int alive = 0;
        for (struct job *k = jobs; k != NULL; k = k->next) alive |= k == j;
        if (!alive || pf[i].revents == 0) continue;
        if (j->kind == JOB_READ) {
          if (pf[i].fd == j->fd) read_chunk(j);
        } else if (pf[i].fd == j->out && j->out >= 0) {
          while (read_output(j, 0) == 2 && pending_out() < OUT_HIGH) {
          }
        } else if (pf[i].fd == j->err && j->err >= 0) {
          while (read_output(j, 1) == 2 && pending_out() < OUT_HIGH) {
          }
        } else if (pf[i].fd == j->in && j->in >= 0) {
          pump_stdin(j);
        }
      }
    }
    free(pf);
    free(owner);
    /* Stdin EOF with nothing pending, commands that exited, output to send. */
    for (struct job *j = jobs, *next; j != NULL; j = next) {
      next = j->next;
      if (j->kind != JOB_EXEC) continue;
      if (j->in >= 0 && j->in_eof && j->inoff == j->inlen) close_fd(&j->in);
      if (j->in >= 0 && j->inoff < j->inlen) pump_stdin(j);
      if (j->exited) {
        while (j->out >= 0 && pending_out() < OUT_HIGH && read_output(j, 0)) {
        }
        while (j->err >= 0 && pending_out() < OUT_HIGH && read_output(j, 1)) {
        }
        finish_exec_if_done(j);
      }
    }
    flush_out();
  }
}
