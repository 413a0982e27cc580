// Guest-side probe of the net bench: while iperf3 sends, reads TCP_INFO of its connections to
// PORT and prints, for the connection that sent the most, the kernel's min_rtt: the windowed
// minimum RTT that Linux's TSO autosizing (tcp_tso_autosize, net.ipv4.tcp_tso_rtt_log) turns
// into the size of the skbs it hands the NIC. It decides which state a guest->host transfer
// settles in (bench/net.ts). The guest image has no inet_diag module (what `ss -ti` reads), so
// the probe borrows the sender's sockets with pidfd_getfd (Linux 5.6+; root).
//
// usage: tcp-min-rtt COMM PORT [INTERVAL_MS] [MAX_SECONDS]
// Ends once the connections it saw are gone (or after MAX_SECONDS) and prints one line:
//   TCPINFO dport=PORT samples=N min_rtt_us=U srtt_us=S bytes_acked=B
#include <arpa/inet.h>
#include <dirent.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_getfd
#define SYS_pidfd_getfd 438
#endif

struct Best {
  uint64_t bytes_acked;
  uint32_t min_rtt;
  uint32_t srtt;
};

static double Now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

// Whether /proc/PID/comm is `comm`.
static int IsNamed(long pid, const char* comm) {
  char path[64], name[64] = "";
  snprintf(path, sizeof path, "/proc/%ld/comm", pid);
  FILE* f = fopen(path, "r");
  if (f == NULL) return 0;
  if (fgets(name, sizeof name, f) != NULL) name[strcspn(name, "\n")] = '\0';
  fclose(f);
  return strcmp(name, comm) == 0;
}

// TCP_INFO of each of `pid`'s sockets connected to `port`; returns how many, and keeps the one
// that has sent the most in `best`.
static int Sample(int pid, int port, struct Best* best) {
  int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
  if (pidfd < 0) return 0;  // gone
  char dir[64];
  snprintf(dir, sizeof dir, "/proc/%d/fd", pid);
  DIR* d = opendir(dir);
  int found = 0;
  for (struct dirent* e; d != NULL && (e = readdir(d)) != NULL;) {
    char* end;
    long target = strtol(e->d_name, &end, 10);
    if (*end != '\0' || target < 0) continue;
    int fd = (int)syscall(SYS_pidfd_getfd, pidfd, (int)target, 0);
    if (fd < 0) continue;
    struct sockaddr_in peer;
    socklen_t plen = sizeof peer;
    struct tcp_info ti;
    socklen_t tlen = sizeof ti;
    memset(&ti, 0, sizeof ti);
    if (getpeername(fd, (struct sockaddr*)&peer, &plen) == 0 && peer.sin_family == AF_INET && ntohs(peer.sin_port) == port &&
        getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &tlen) == 0) {
      found++;
      if (ti.tcpi_bytes_acked >= best->bytes_acked) {
        best->bytes_acked = ti.tcpi_bytes_acked;
        best->min_rtt = ti.tcpi_min_rtt;
        best->srtt = ti.tcpi_rtt;
      }
    }
    close(fd);
  }
  if (d != NULL) closedir(d);
  close(pidfd);
  return found;
}

int main(int argc, char** argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: %s COMM PORT [INTERVAL_MS] [MAX_SECONDS]\n", argv[0]);
    return 2;
  }
  const char* comm = argv[1];
  int port = atoi(argv[2]);
  int interval_ms = argc > 3 ? atoi(argv[3]) : 100;
  double max_s = argc > 4 ? atof(argv[4]) : 120;
  struct Best best = {0, 0, 0};
  int samples = 0, seen = 0;
  double start = Now(), last_seen = start;
  while (Now() - start < max_s) {
    int n = 0;
    DIR* proc = opendir("/proc");
    for (struct dirent* e; proc != NULL && (e = readdir(proc)) != NULL;) {
      char* end;
      long pid = strtol(e->d_name, &end, 10);
      if (*end == '\0' && pid > 0 && pid != getpid() && IsNamed(pid, comm)) n += Sample((int)pid, port, &best);
    }
    if (proc != NULL) closedir(proc);
    if (n > 0) {
      seen = 1;
      samples++;
      last_seen = Now();
    } else if (seen && Now() - last_seen > 1.0) {
      break;  // the transfer ended
    }
    usleep(interval_ms * 1000);
  }
  printf("TCPINFO dport=%d samples=%d min_rtt_us=%u srtt_us=%u bytes_acked=%llu\n", port, samples, best.min_rtt,
         best.srtt, (unsigned long long)best.bytes_acked);
  return 0;
}
