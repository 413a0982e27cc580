/*
 * plat-fuzz.S — flat 32-bit protected-mode guest (loaded at 0x10000) that makes seeded random
 * port and MMIO accesses (reads, writes, rep ins/outs) through the real run loop, the guest
 * side of the device fuzzers (test/fuzz, test/kvm/machine-fuzz.test.ts).
 *
 * Parameters (written by the host before start, at PARAMS):
 *   +0 seed (xorshift32 state; 0 is taken as 1)   +4 accesses to make
 * Results (written by the guest): +8 accesses made so far, +12 NICs found.
 * The guest ends by debug-exit with DONE_VALUE after the last access.
 *
 * Every access is random except where it would end the machine early or let a NIC's DMA
 * overwrite this guest (the machine would fail, not the device model):
 *   - no writes to debug-exit (0xf4-0xf7), i8042 commands 0xd1 and 0xf0-0xff (CPU reset),
 *     RST_CPU in the reset control register (0xcf9), SLP_EN in PM1_CNT (0x605 bit 5);
 *   - no PCI config writes to BARs and the ROM BAR (0x10-0x33): the NICs' windows stay put;
 *   - a write touching the low dword of a NIC's DMA address registers (StatsAddr,
 *     TxRingAddr/HiTxRingAddr = TSAD0/TSAD2, RBSTART, RxRingAddr) is replaced by dword writes of an address inside the DMA area the
 *     host prepared (RX rings and buffers, C+ descriptor rings whose address fields the NIC
 *     never writes). Everything else reaches the devices as drawn.
 */
#define PARAMS       0x9000
#define DONE_VALUE   0x5a
#define SCRATCH      0x3f0000	/* rep ins/outs buffer (4 KiB) */
#define STATS_AREA   0x2f0000
#define RXBUF_AREA   0x200000	/* 4 normal-mode RX rings, 128 KiB apart */
#define TX_RINGS     0x300000	/* 2 C+ TX rings, 16 KiB apart */
#define RX_RINGS     0x308000	/* 2 C+ RX rings, 16 KiB apart */
#define TEMPLATES    0x310000	/* opts1 templates: 4 rings x 64 dwords (TX, TX, RX, RX) */
#define MMIO_WINDOW  0xc0000000	/* PCI MMIO window: the NICs' BAR1 */
#define MAX_NICS     4
#define PORT_COUNT   29	/* entries in `ports` */
#define DRIVER_COUNT 15	/* entries in `driver_writes` */
	.text
	.globl _start
_start:
	jmp main

#include "plat-lib32.S"

/* EAX = next xorshift32 value (clobbers nothing else). */
rand:
	movl rng_state, %eax
	pushl %edx
	movl %eax, %edx
	shll $13, %edx
	xorl %edx, %eax
	movl %eax, %edx
	shrl $17, %edx
	xorl %edx, %eax
	movl %eax, %edx
	shll $5, %edx
	xorl %edx, %eax
	popl %edx
	movl %eax, rng_state
	ret

/* EAX = config dword at bus 0, slot EBX, register ECX (clobbers EDX). */
cfg_read:
	movl %ebx, %eax
	shll $11, %eax
	orl %ecx, %eax
	orl $0x80000000, %eax
	movw $0xcf8, %dx
	outl %eax, %dx
	movw $0xcfc, %dx
	inl %dx, %eax
	ret

/* ---------------------------------------------------------------- access primitives
 * EDX = port or address, EAX = value, size in access_size (1, 2, 4). */
port_write:
	cmpl $1, access_size
	je 1f
	cmpl $2, access_size
	je 2f
	outl %eax, %dx
	ret
1:	outb %al, %dx
	ret
2:	outw %ax, %dx
	ret

port_read:
	cmpl $1, access_size
	je 1f
	cmpl $2, access_size
	je 2f
	inl %dx, %eax
	ret
1:	inb %dx, %al
	ret
2:	inw %dx, %ax
	ret

mmio_write:
	cmpl $1, access_size
	je 1f
	cmpl $2, access_size
	je 2f
	movl %eax, (%edx)
	ret
1:	movb %al, (%edx)
	ret
2:	movw %ax, (%edx)
	ret

mmio_read:
	cmpl $1, access_size
	je 1f
	cmpl $2, access_size
	je 2f
	movl (%edx), %eax
	ret
1:	movb (%edx), %al
	ret
2:	movw (%edx), %ax
	ret

/* access_size = 1, 2 or 4 from EAX's low bits (clobbers EAX). */
pick_size:
	andl $3, %eax
	jnz 1f
	movl $4, %eax
1:	cmpl $3, %eax
	jne 2f
	movl $1, %eax
2:	movl %eax, access_size
	ret

/* ---------------------------------------------------------------- NIC DMA registers
 * Is dword offset ECX one of a NIC's DMA address registers? ZF=1 if so. Only the low dwords:
 * a high dword may hold anything, as a non-zero one puts the address beyond this guest's RAM
 * (32 MiB), where the NIC does no DMA. StatsAddr is TSD0 in normal mode: its safe values are
 * also sensible TSD0 values (a size, OWN clear).
 */
is_dma_reg:
	cmpl $0x10, %ecx
	je 1f
	cmpl $0x20, %ecx
	je 1f
	cmpl $0x28, %ecx
	je 1f
	cmpl $0x30, %ecx
	je 1f
	cmpl $0xe4, %ecx
1:	ret

/* EAX = a safe value for the DMA register at dword offset ECX. */
safe_value:
	cmpl $0x10, %ecx
	jne 1f
	call rand
	andl $0xf08, %eax		/* DumpStats (bit 3) now and then */
	orl $STATS_AREA, %eax
	ret
1:	cmpl $0x20, %ecx
	je 2f
	cmpl $0x28, %ecx
	je 2f
	cmpl $0x30, %ecx
	je 3f
	cmpl $0xe4, %ecx
	je 4f
	ud2				/* not reached: only the registers above are DMA registers */
2:	call rand
	andl $0x4000, %eax
	orl $TX_RINGS, %eax
	ret
3:	call rand
	andl $0x60000, %eax
	orl $RXBUF_AREA, %eax
	ret
4:	call rand
	andl $0x4000, %eax
	orl $RX_RINGS, %eax
	ret

/*
 * Before a write of access_size bytes at EDX (EDI = 0 port, 1 MMIO): if it touches a NIC's
 * DMA address register, write safe dwords there instead and return EAX = 1 (skip the write);
 * else EAX = 0. Preserves EDX and the value in `write_value`.
 */
guard_nic_dma:
	pushl %ebx
	pushl %ecx
	pushl %esi
	xorl %ebx, %ebx
1:	cmpl nic_count, %ebx
	jae 5f
	movl nic_io(,%ebx,4), %esi
	testl %edi, %edi
	jz 2f
	movl nic_mmio(,%ebx,4), %esi
2:	testl %esi, %esi
	jz 4f
	movl %edx, %ecx
	subl %esi, %ecx			/* offset in the window (huge if below it) */
	cmpl $0x100, %ecx
	jae 4f
	/* First and last dword the access touches. */
	pushl %ecx
	andl $~3, %ecx
	call is_dma_reg
	popl %ecx
	je 6f
	addl access_size, %ecx
	decl %ecx
	andl $~3, %ecx
	call is_dma_reg
	je 6f
4:	incl %ebx
	jmp 1b
5:	xorl %eax, %eax
	popl %esi
	popl %ecx
	popl %ebx
	ret
6:	/* Replace: both dwords, each only if it is a DMA register. */
	pushl %edx
	movl %edx, %ecx
	subl %esi, %ecx
	andl $~3, %ecx
	call safe_write_if_dma
	movl (%esp), %ecx
	subl %esi, %ecx
	addl access_size, %ecx
	decl %ecx
	andl $~3, %ecx
	call safe_write_if_dma
	popl %edx
	movl $1, %eax
	popl %esi
	popl %ecx
	popl %ebx
	ret

/* If dword offset ECX (< 0x100) of the window at ESI is a DMA register, write a safe value. */
safe_write_if_dma:
	cmpl $0x100, %ecx
	jae 1f
	call is_dma_reg
	jne 1f
	call safe_value
	leal (%esi,%ecx), %edx
	testl %edi, %edi
	jnz 2f
	outl %eax, %dx
1:	ret
2:	movl %eax, (%edx)
	ret

/*
 * Would a write of access_size bytes of `write_value` at port EDX end the machine? Masks the
 * value (EAX out) or returns EAX = 1 to skip the write entirely (else 0).
 */
guard_port_end:
	cmpl $0xf4, %edx		/* debug-exit */
	jb 1f
	cmpl $0xf7, %edx
	jbe 9f
1:	cmpl $0x64, %edx		/* i8042 command: reset pulses and output-port writes */
	jne 2f
	movl write_value, %eax
	cmpb $0xd1, %al
	je 9f
	cmpb $0xf0, %al
	jae 9f
2:	cmpl $0xcf9, %edx		/* reset control register: no RST_CPU */
	jne 3f
	cmpl $1, access_size
	jne 3f
	andl $~0x04, write_value
3:	/* PM1_CNT's SLP_EN is bit 5 of port 0x605: clear it in whichever byte lands there. */
	cmpl $0x605, %edx
	ja 4f
	movl %edx, %eax
	addl access_size, %eax
	cmpl $0x605, %eax
	jbe 4f
	movl $0x605, %ecx
	subl %edx, %ecx
	shll $3, %ecx
	addl $5, %ecx
	movl $1, %eax
	shll %cl, %eax
	notl %eax
	andl %eax, write_value
4:	/* CONFIG_ADDRESS is remembered; CONFIG_DATA writes to BARs (0x10-0x33) are skipped. */
	cmpl $0xcf8, %edx
	jne 5f
	cmpl $4, access_size
	jne 5f
	movl write_value, %eax
	movl %eax, config_address
5:	cmpl $0xcfc, %edx
	jb 6f
	cmpl $0xcff, %edx
	ja 6f
	movl config_address, %eax
	andl $0xfc, %eax
	cmpl $0x10, %eax
	jb 6f
	cmpl $0x33, %eax
	jbe 9f
6:	xorl %eax, %eax
	ret
9:	movl $1, %eax
	ret

/* ---------------------------------------------------------------- operations */

/* A port from the table of device ports (plus 0-7), or any port. */
pick_port:
	call rand
	testl $0x300, %eax
	jz 1f
	movl %eax, %edx
	shrl $16, %edx
	andl $0x1f, %edx
	cmpl $PORT_COUNT, %edx
	jb 2f
	subl $PORT_COUNT, %edx
2:	movzwl ports(,%edx,2), %edx
	andl $7, %eax
	addl %eax, %edx
	ret
1:	shrl $12, %eax
	movzwl %ax, %edx
	cmpl $0x100, %edx		/* below 0x100 only through the table (no PIC/PIT) */
	jae 3f
	orl $0x100, %edx
3:	ret

op_port:
	call pick_port
	call rand
	pushl %eax
	call pick_size
	popl %eax
	testl $0x10000, %eax
	jz 8f
	/* write */
	call rand
	movl %eax, write_value
	call guard_port_end
	testl %eax, %eax
	jnz 8f
	xorl %edi, %edi
	movl write_value, %eax
	call guard_nic_dma
	testl %eax, %eax
	jnz 9f
	movl write_value, %eax
	jmp port_write
8:	jmp port_read
9:	ret

/* rep insb/w/l (anywhere) or rep outsb/w/l (where a write is harmless) of 1-64 elements. */
op_rep:
	call pick_port
	call rand
	movl %eax, %ecx
	andl $63, %ecx
	incl %ecx
	pushl %eax
	shrl $8, %eax
	call pick_size
	popl %eax
	movl $SCRATCH, %edi
	movl $SCRATCH, %esi
	testl $0x40000, %eax
	jnz 5f
	cmpl $0xcf8, %edx		/* PCI config: the guard tracks CONFIG_ADDRESS per write */
	jb 0f
	cmpl $0xcff, %edx
	jbe 5f
0:
	/* rep outs: only to ports where no single write is guarded */
	pushl %ecx
	movl $0xffffffff, write_value
	call guard_port_end
	movl %eax, %ebx
	movl $0xffffffff, %eax
	cmpl %eax, write_value
	popl %ecx
	jne 5f				/* the guard would have masked the value */
	testl %ebx, %ebx
	jnz 5f
	pushl %ecx
	pushl %edi
	xorl %edi, %edi
	call guard_nic_dma_probe
	popl %edi
	popl %ecx
	testl %eax, %eax
	jnz 5f
	cmpl $1, access_size
	je 1f
	cmpl $2, access_size
	je 2f
	rep outsl
	ret
1:	rep outsb
	ret
2:	rep outsw
	ret
5:	cmpl $1, access_size
	je 6f
	cmpl $2, access_size
	je 7f
	rep insl
	ret
6:	rep insb
	ret
7:	rep insw
	ret

/* Like guard_nic_dma but only says (EAX) whether port EDX hits any NIC window at all. */
guard_nic_dma_probe:
	pushl %ebx
	xorl %ebx, %ebx
1:	cmpl nic_count, %ebx
	jae 3f
	movl %edx, %eax
	subl nic_io(,%ebx,4), %eax
	cmpl $0x100, %eax
	jb 2f
	incl %ebx
	jmp 1b
2:	movl $1, %eax
	popl %ebx
	ret
3:	xorl %eax, %eax
	popl %ebx
	ret

/* A NIC register through BAR0 or BAR1: half the writes are what a driver writes. */
op_nic:
	cmpl $0, nic_count
	je 9f
	call rand
	movl %eax, %ebx
	movl %eax, %ecx
	shrl $4, %ecx
	andl $3, %ecx
	cmpl nic_count, %ecx
	jb 1f
	xorl %ecx, %ecx
1:	movl %ebx, %eax
	shrl $8, %eax
	call pick_size
	xorl %edi, %edi
	movl nic_io(,%ecx,4), %esi
	testl $0x40, %ebx
	jz 2f
	movl $1, %edi
	movl nic_mmio(,%ecx,4), %esi
2:	testl $0x80, %ebx
	jz 3f
	/* a driver's write: entry (ESI-relative offset, size, value) from the table */
	movl %ebx, %eax
	shrl $16, %eax
	andl $0xf, %eax
	cmpl $DRIVER_COUNT, %eax
	jb 4f
	subl $DRIVER_COUNT, %eax
4:	leal driver_writes(,%eax,8), %eax
	movzwl (%eax), %edx
	movzwl 2(%eax), %ecx
	movl %ecx, access_size
	movl 4(%eax), %eax
	movl %eax, write_value
	addl %esi, %edx
	jmp 6f
3:	/* random offset, read or write */
	movl %ebx, %edx
	shrl $20, %edx
	andl $0xff, %edx
	addl %esi, %edx
	testl $0x8, %ebx
	jz 7f
	call rand
	movl %eax, write_value
6:	call guard_nic_dma
	testl %eax, %eax
	jnz 9f
	movl write_value, %eax
	testl %edi, %edi
	jz port_write
	jmp mmio_write
7:	testl %edi, %edi
	jz port_read
	jmp mmio_read
9:	ret

/* Anywhere in the first 8 KiB of the PCI MMIO window. */
op_mmio:
	call rand
	movl %eax, %ebx
	call pick_size
	movl %ebx, %edx
	shrl $8, %edx
	andl $0x1fff, %edx
	addl $MMIO_WINDOW, %edx
	movl $1, %edi
	testl $0x4, %ebx
	jz mmio_read
	call rand
	movl %eax, write_value
	call guard_nic_dma
	testl %eax, %eax
	jnz 1f
	movl write_value, %eax
	jmp mmio_write
1:	ret

/* Hand a C+ descriptor back to the NIC: opts1 = template | OWN (address fields stay the host's). */
op_rearm:
	call rand
	movl %eax, %ebx
	andl $0x3f, %ebx		/* index */
	shrl $8, %eax
	andl $3, %eax			/* ring: TX, TX, RX, RX */
	movl %eax, %ecx
	shll $8, %ecx
	movl TEMPLATES(%ecx,%ebx,4), %edx
	orl $0x80000000, %edx
	shll $14, %eax			/* rings are 16 KiB apart, TX rings first */
	addl $TX_RINGS, %eax
	shll $4, %ebx
	movl %edx, (%eax,%ebx)
	ret

/* ---------------------------------------------------------------- main */
main:
	cld
	movl PARAMS, %eax
	testl %eax, %eax
	jnz 1f
	incl %eax
1:	movl %eax, rng_state
	movl $0, PARAMS + 8

	/* Find the NICs (vendor 0x10ec) on bus 0 and their BARs. */
	movl $1, %ebx
2:	xorl %ecx, %ecx
	call cfg_read
	cmpw $0x10ec, %ax
	jne 3f
	movl nic_count, %esi
	cmpl $MAX_NICS, %esi
	jae 3f
	movl $0x10, %ecx
	call cfg_read
	andl $0xfffffffc, %eax
	movl %eax, nic_io(,%esi,4)
	movl $0x14, %ecx
	call cfg_read
	andl $0xfffffff0, %eax
	movl %eax, nic_mmio(,%esi,4)
	incl nic_count
3:	incl %ebx
	cmpl $32, %ebx
	jb 2b
	movl nic_count, %eax
	movl %eax, PARAMS + 12
	movl $0, config_address

	/* Scratch buffer for rep outs: random. */
	movl $SCRATCH, %edi
	movl $1024, %ecx
4:	call rand
	stosl
	loop 4b

	PRINT "fuzz start\n"

	/* The loop: one random operation per iteration. */
loop_top:
	movl PARAMS + 8, %eax
	cmpl PARAMS + 4, %eax
	jae done
	call rand
	andl $0xff, %eax
	cmpl $90, %eax
	jb 1f
	cmpl $170, %eax
	jb 2f
	cmpl $200, %eax
	jb 3f
	cmpl $230, %eax
	jb 4f
	call op_rearm
	jmp 9f
1:	call op_port
	jmp 9f
2:	call op_nic
	jmp 9f
3:	call op_rep
	jmp 9f
4:	call op_mmio
9:	incl PARAMS + 8
	jmp loop_top

done:
	DEBUG_EXIT_WITH $DONE_VALUE
5:	hlt
	jmp 5b

	.balign 4
rng_state:	.long 1
access_size:	.long 4
write_value:	.long 0
config_address:	.long 0
nic_count:	.long 0
nic_io:		.long 0, 0, 0, 0
nic_mmio:	.long 0, 0, 0, 0

/* Device ports the port operation favours (it adds 0-7). Not the PIC and PIT: KVM emulates
 * those in the kernel, so they are not ours to fuzz (and a word write to the PIC is logged). */
ports:
	.word 0x3f8, 0x60, 0x64, 0x70, 0x80, 0xed, 0xf0, 0x510, 0x600, 0x604, 0x608, 0x620, 0xcf8, 0xcfc
	.word 0xc000, 0xc008, 0xc030, 0xc038, 0xc0d8, 0xc0e0, 0xc100, 0xc130, 0xc138, 0xc1d8, 0x2f8, 0x511, 0x61
	.word 0x3e8, 0x2e8

/* Driver writes: u16 offset in the window, u16 size, u32 value. */
	.balign 4
driver_writes:
	.word 0x37, 1
	.long 0x0c			/* ChipCmd: RX and TX on */
	.word 0x3c, 2
	.long 0xffff			/* IntrMask */
	.word 0x3e, 2
	.long 0xffff			/* IntrStatus: acknowledge all */
	.word 0x44, 4
	.long 0x0000f70e		/* RxConfig: broadcast, multicast, mine; 64K ring, WRAP */
	.word 0x44, 4
	.long 0x0000000e		/* RxConfig: 8K ring */
	.word 0xe0, 2
	.long 0x002b			/* CpCmd: C+ RX/TX, checksums, PCIMulRW */
	.word 0xe0, 2
	.long 0x0000			/* CpCmd: normal mode */
	.word 0xd9, 1
	.long 0x40			/* TxPoll: normal queue */
	.word 0xd9, 1
	.long 0x80			/* TxPoll: high queue */
	.word 0x40, 4
	.long 0x00060000		/* TxConfig: loopback */
	.word 0x40, 4
	.long 0x03000700		/* TxConfig: normal */
	.word 0x38, 2
	.long 0xfff0			/* CAPR */
	.word 0x10, 4
	.long 0x00000600		/* TSD0: a 1536-byte frame */
	.word 0x50, 1
	.long 0xc0			/* Cfg9346: unlock */
	.word 0x54, 4
	.long 0x00001000		/* TimerInt */
