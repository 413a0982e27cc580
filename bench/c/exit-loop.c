/*
 * exit-loop.c — the C baseline for bench/exit-roundtrip.ts: the same guest
 * (test/guests/exit-loop.S), the same VM shape (RAM 0..0xa0000, real mode at 0:0x8000,
 * no irqchip) and the same minimal exit handling, with raw ioctls.
 *
 * usage: exit-loop <image> <pio|mmio> <iterations> <warmup-iterations>
 * Runs the guest once with <warmup-iterations> exits (page faults, caches), then again with
 * <iterations> and prints one line of JSON: {"mode":..., "exits":N, "ns":T}, T covering only
 * the KVM_RUN loop of the timed pass.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define LOAD_ADDR 0x8000
#define RAM_SIZE 0xa0000
#define PORT_LOOP 0xfd
#define PORT_REPORT 0xe8
#define MMIO_ADDR 0xa0000

static void die(const char *what) {
  fprintf(stderr, "exit-loop: %s: %s\n", what, strerror(errno));
  exit(1);
}

static int xioctl(int fd, unsigned long req, void *arg, const char *what) {
  int r;
  do r = ioctl(fd, req, arg); while (r < 0 && (errno == EINTR || errno == EAGAIN));
  if (r < 0) die(what);
  return r;
}

static void enter(int vcpu, uint64_t iterations, int mmio) {
  struct kvm_sregs s;
  xioctl(vcpu, KVM_GET_SREGS, &s, "KVM_GET_SREGS");
  struct kvm_segment *segs[] = {&s.cs, &s.ds, &s.es, &s.ss, &s.fs, &s.gs};
  for (unsigned i = 0; i < sizeof segs / sizeof segs[0]; i++) {
    segs[i]->base = 0;
    segs[i]->selector = 0;
  }
  xioctl(vcpu, KVM_SET_SREGS, &s, "KVM_SET_SREGS");
  struct kvm_regs r;
  memset(&r, 0, sizeof r);
  r.rip = LOAD_ADDR;
  r.rsp = LOAD_ADDR;
  r.rflags = 2;
  r.rcx = iterations;
  r.rbx = mmio ? 1 : 0;
  xioctl(vcpu, KVM_SET_REGS, &r, "KVM_SET_REGS");
}

/* Runs until the report port; returns the number of loop exits seen. */
static uint64_t run_guest(int vcpu, struct kvm_run *run) {
  uint64_t exits = 0;
  for (;;) {
    if (ioctl(vcpu, KVM_RUN, 0) < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      die("KVM_RUN");
    }
    switch (run->exit_reason) {
    case KVM_EXIT_IO:
      if (run->io.port == PORT_LOOP) { exits++; continue; }
      if (run->io.port == PORT_REPORT) return exits;
      fprintf(stderr, "exit-loop: unexpected port 0x%x\n", run->io.port);
      exit(1);
    case KVM_EXIT_MMIO:
      if (run->mmio.phys_addr == MMIO_ADDR && run->mmio.is_write) { exits++; continue; }
      fprintf(stderr, "exit-loop: unexpected mmio 0x%llx\n", (unsigned long long)run->mmio.phys_addr);
      exit(1);
    default:
      fprintf(stderr, "exit-loop: unexpected exit reason %u\n", run->exit_reason);
      exit(1);
    }
  }
}

int main(int argc, char **argv) {
  if (argc != 5) {
    fprintf(stderr, "usage: %s <image> <pio|mmio> <iterations> <warmup>\n", argv[0]);
    return 2;
  }
  int mmio = strcmp(argv[2], "mmio") == 0;
  uint64_t iterations = strtoull(argv[3], NULL, 0);
  uint64_t warmup = strtoull(argv[4], NULL, 0);
  if (iterations == 0 || warmup == 0) {
    fprintf(stderr, "exit-loop: iterations and warmup must be >= 1\n");
    return 2;
  }

  int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
  if (kvm < 0) die("open /dev/kvm");
  int vm = xioctl(kvm, KVM_CREATE_VM, 0, "KVM_CREATE_VM");
  xioctl(vm, KVM_SET_TSS_ADDR, (void *)0xfffbd000UL, "KVM_SET_TSS_ADDR");
  uint8_t *ram = mmap(NULL, RAM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (ram == MAP_FAILED) die("mmap RAM");
  FILE *f = fopen(argv[1], "rb");
  if (f == NULL) die(argv[1]);
  size_t n = fread(ram + LOAD_ADDR, 1, RAM_SIZE - LOAD_ADDR, f);
  fclose(f);
  if (n == 0) die("empty image");
  struct kvm_userspace_memory_region region = {
    .slot = 0, .flags = 0, .guest_phys_addr = 0, .memory_size = RAM_SIZE, .userspace_addr = (uintptr_t)ram,
  };
  xioctl(vm, KVM_SET_USER_MEMORY_REGION, &region, "KVM_SET_USER_MEMORY_REGION");
  int vcpu = xioctl(vm, KVM_CREATE_VCPU, 0, "KVM_CREATE_VCPU");
  int mmap_size = xioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0, "KVM_GET_VCPU_MMAP_SIZE");
  struct kvm_run *run = mmap(NULL, (size_t)mmap_size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0);
  if (run == MAP_FAILED) die("mmap kvm_run");

  enter(vcpu, warmup, mmio);
  run_guest(vcpu, run);

  enter(vcpu, iterations, mmio);
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  uint64_t exits = run_guest(vcpu, run);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  if (exits != iterations) {
    fprintf(stderr, "exit-loop: saw %llu exits, expected %llu\n", (unsigned long long)exits, (unsigned long long)iterations);
    return 1;
  }
  long long ns = (long long)(t1.tv_sec - t0.tv_sec) * 1000000000LL + (t1.tv_nsec - t0.tv_nsec);
  printf("{\"mode\":\"%s\",\"exits\":%llu,\"ns\":%lld}\n", mmio ? "mmio" : "pio", (unsigned long long)exits, ns);
  return 0;
}
