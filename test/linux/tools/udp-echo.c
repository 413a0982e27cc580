/*
 * udp-echo: a UDP echo server and client for linux-tier tests (busybox's nc has no UDP).
 * Freestanding (raw x86-64 system calls, no libc) so that the binary is a few KiB and can be
 * written into a test guest over its console.
 *
 *   udp-echo serve PORT COUNT      answer COUNT datagrams on PORT with their own bytes, then exit
 *   udp-echo ask ADDR PORT TEXT    send TEXT to ADDR:PORT, print the answer (3 tries, 5 s each)
 *
 * Exit status 0 on success, 1 on a system call's failure, 2 on usage, 3 when no answer came.
 */
typedef unsigned long u64;
typedef unsigned int u32;
typedef unsigned short u16;

static long sys(long n, long a, long b, long c, long d, long e, long f)
{
	long r;
	register long r10 __asm__("r10") = d;
	register long r8 __asm__("r8") = e;
	register long r9 __asm__("r9") = f;
	__asm__ volatile("syscall" : "=a"(r) : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9) : "rcx", "r11", "memory");
	return r;
}

struct sockaddr_in { u16 family; u16 port; u32 addr; unsigned char zero[8]; };
struct timeval { long sec; long usec; };

enum { SYS_write = 1, SYS_socket = 41, SYS_sendto = 44, SYS_recvfrom = 45, SYS_bind = 49, SYS_setsockopt = 54, SYS_exit = 231 };

static void out(const char *s, long n) { sys(SYS_write, 1, (long)s, n, 0, 0, 0); }
static long len(const char *s) { long n = 0; while (s[n]) n++; return n; }
static void say(const char *s) { out(s, len(s)); }
static __attribute__((noreturn)) void quit(int status) { sys(SYS_exit, status, 0, 0, 0, 0, 0); for (;;) {} }
static __attribute__((noreturn)) void fail(const char *what) { say("udp-echo: "); say(what); say(" failed\n"); quit(1); }

static long number(const char *s)
{
	long v = 0;
	if (!*s) return -1;
	for (; *s; s++) {
		if (*s < '0' || *s > '9') return -1;
		v = v * 10 + (*s - '0');
	}
	return v;
}

static int ipv4(const char *s, u32 *addr)
{
	unsigned char b[4];
	for (int i = 0; i < 4; i++) {
		long v = 0; int digits = 0;
		for (; *s >= '0' && *s <= '9'; s++, digits++) v = v * 10 + (*s - '0');
		if (!digits || v > 255 || (i < 3 ? *s != '.' : *s != 0)) return -1;
		b[i] = (unsigned char)v;
		s++;
	}
	*addr = b[0] | b[1] << 8 | b[2] << 16 | (u32)b[3] << 24;
	return 0;
}

static u16 be16(long v) { return (u16)((v & 0xff) << 8 | (v >> 8 & 0xff)); }

static char buf[65536];

static int serve(long port, long count)
{
	long s = sys(SYS_socket, 2, 2, 0, 0, 0, 0); /* AF_INET, SOCK_DGRAM */
	if (s < 0) fail("socket");
	struct sockaddr_in me = { 2, be16(port), 0, { 0 } };
	if (sys(SYS_bind, s, (long)&me, sizeof me, 0, 0, 0) < 0) fail("bind");
	say("listening\n");
	for (long i = 0; i < count; i++) {
		struct sockaddr_in peer;
		u32 plen = sizeof peer;
		long n = sys(SYS_recvfrom, s, (long)buf, sizeof buf, 0, (long)&peer, (long)&plen);
		if (n < 0) fail("recvfrom");
		if (sys(SYS_sendto, s, (long)buf, n, 0, (long)&peer, plen) != n) fail("sendto");
	}
	return 0;
}

static int ask(const char *host, long port, const char *text)
{
	struct sockaddr_in to = { 2, be16(port), 0, { 0 } };
	if (ipv4(host, &to.addr) < 0) { say("udp-echo: bad address\n"); return 2; }
	long s = sys(SYS_socket, 2, 2, 0, 0, 0, 0);
	if (s < 0) fail("socket");
	struct timeval tv = { 5, 0 };
	if (sys(SYS_setsockopt, s, 1, 20, (long)&tv, sizeof tv, 0) < 0) fail("setsockopt"); /* SOL_SOCKET, SO_RCVTIMEO */
	long n = len(text);
	for (int tries = 0; tries < 3; tries++) {
		if (sys(SYS_sendto, s, (long)text, n, 0, (long)&to, sizeof to) != n) fail("sendto");
		long got = sys(SYS_recvfrom, s, (long)buf, sizeof buf - 1, 0, 0, 0);
		if (got >= 0) { buf[got] = '\n'; out(buf, got + 1); return 0; }
	}
	say("udp-echo: no answer\n");
	return 3;
}

static int streq(const char *a, const char *b) { while (*a && *a == *b) a++, b++; return *a == *b; }

int start(long argc, char **argv)
{
	if (argc == 4 && streq(argv[1], "serve") && number(argv[2]) > 0 && number(argv[2]) < 65536 && number(argv[3]) > 0)
		return serve(number(argv[2]), number(argv[3]));
	if (argc == 5 && streq(argv[1], "ask") && number(argv[3]) > 0 && number(argv[3]) < 65536)
		return ask(argv[2], number(argv[3]), argv[4]);
	say("usage: udp-echo serve PORT COUNT | udp-echo ask ADDR PORT TEXT\n");
	return 2;
}

/* The kernel enters with the stack pointer at argc, then argv[]. */
__asm__(".globl _start\n_start:\n\txor %rbp, %rbp\n\tmov (%rsp), %rdi\n\tlea 8(%rsp), %rsi\n\tand $-16, %rsp\n\tcall start\n\tmov %rax, %rdi\n\tmov $231, %rax\n\tsyscall\n");
