/*
 * plat-tso-flood.S — flat 32-bit protected-mode guest (loaded at 0x10000, 32 MiB of RAM) that
 * asks the RTL8139C+ for as much transmit work as one register write can start:
 *
 *   phase 1: 1,024 LargeSend descriptors of a 65,535-byte TCP frame at MSS 1, the whole ring
 *            (EOR on the last), then one TxPoll write. The chip refuses MSS 1 (TxError).
 *   phase 2: 16 such descriptors at MSS 8 (8,186 segments each, 130,976 in all), started by a
 *            `rep outsb` of 4,096 TxPoll writes in one exit.
 *
 * After each phase it waits, without an exit, until every descriptor's OWN bit is clear in RAM,
 * and prints how many came back with TxError. The NIC sits where the platform puts the first
 * PCI function's I/O BAR (NIC_IO, checked by the test). The ring restarts at descriptor 0 after
 * the EOR of phase 1, where phase 2 puts its descriptors.
 *
 * Output on COM1:  "phase1 errors=XXXXXXXX"  "phase2 errors=XXXXXXXX"  "tso done"
 * debug-exit value: 0x7e5.
 */
#define NIC_IO       0xc000
#define ChipCmd      0x37
#define CmdReset     0x10
#define CmdTxEnb     0x04
#define TxRingAddr   0x20
#define TxPoll       0xd9
#define NormalTxPoll 0x40
#define CpCmd        0xe0
#define CpTxOn       0x0001

#define FRAME        0x100000
#define FRAME_LEN    0xffff
#define RING         0x200000
#define POLLS        0x300000
#define DescOwn      0x80000000
#define RingEnd      0x40000000
#define FirstFrag    0x20000000
#define LastFrag     0x10000000
#define LargeSend    0x08000000
#define TxError      0x00800000
#define MSSShift     16

	.text
	.globl _start
_start:
	jmp main

#include "plat-lib32.S"

/* Fill ECX descriptors from RING with opts1 = EAX (| RingEnd on the last). */
fill_ring:
	pushl %edi
	pushl %ecx
	movl $RING, %edi
1:	movl $0, 4(%edi)
	movl $FRAME, 8(%edi)
	movl $0, 12(%edi)
	cmpl $1, %ecx
	jne 2f
	orl $RingEnd, %eax
2:	movl %eax, (%edi)
	addl $16, %edi
	decl %ecx
	jnz 1b
	popl %ecx
	popl %edi
	ret

/* Wait until the ECX descriptors from RING are the driver's again; EAX = how many have TxError. */
wait_ring:
	pushl %esi
	pushl %ecx
	pushl %edx
	xorl %edx, %edx
	movl $RING, %esi
1:	movl (%esi), %eax
	testl $DescOwn, %eax
	jz 2f
	pause
	jmp 1b
2:	testl $TxError, %eax
	jz 3f
	incl %edx
3:	addl $16, %esi
	decl %ecx
	jnz 1b
	movl %edx, %eax
	popl %edx
	popl %ecx
	popl %esi
	ret

main:
	cld
	/* A TCP/IPv4 frame: Ethernet header, IP (total length = frame - 14, protocol 6), TCP (doff 5). */
	movl $FRAME, %edi
	movl $0xffffffff, (%edi)
	movw $0xffff, 4(%edi)
	movl $0x00545202, 6(%edi)
	movw $0x0100, 10(%edi)
	movw $0x0008, 12(%edi)
	movb $0x45, 14(%edi)
	movw $((FRAME_LEN - 14) >> 8 | ((FRAME_LEN - 14) & 0xff) << 8), 16(%edi)
	movb $64, 22(%edi)
	movb $6, 23(%edi)
	movl $0x0100000a, 26(%edi)
	movl $0x0200000a, 30(%edi)
	movb $0x50, 46(%edi)
	movb $0x10, 47(%edi)

	/* cp_init_hw's order: reset, C+ transmit on, ring address, transmitter on. */
	movw $NIC_IO + ChipCmd, %dx
	movb $CmdReset, %al
	outb %al, %dx
	movw $NIC_IO + CpCmd, %dx
	movw $CpTxOn, %ax
	outw %ax, %dx
	movw $NIC_IO + TxRingAddr, %dx
	movl $RING, %eax
	outl %eax, %dx
	addw $4, %dx
	xorl %eax, %eax
	outl %eax, %dx
	movw $NIC_IO + ChipCmd, %dx
	movb $CmdTxEnb, %al
	outb %al, %dx

	/* Phase 1: the whole ring at MSS 1, one TxPoll. */
	movl $(DescOwn | FirstFrag | LastFrag | LargeSend | (1 << MSSShift) | FRAME_LEN), %eax
	movl $1024, %ecx
	call fill_ring
	movw $NIC_IO + TxPoll, %dx
	movb $NormalTxPoll, %al
	outb %al, %dx
	call wait_ring
	REPORT "phase1 errors="

	/* Phase 2: 16 descriptors at MSS 8, and 4,096 TxPoll writes in one rep outsb. */
	movl $(DescOwn | FirstFrag | LastFrag | LargeSend | (8 << MSSShift) | FRAME_LEN), %eax
	movl $16, %ecx
	call fill_ring
	movl $POLLS, %edi
	movl $4096, %ecx
	movb $NormalTxPoll, %al
	rep stosb
	movl $POLLS, %esi
	movl $4096, %ecx
	movw $NIC_IO + TxPoll, %dx
	rep outsb
	movl $16, %ecx
	call wait_ring
	REPORT "phase2 errors="
	PRINT "tso done\n"
	DEBUG_EXIT_WITH $0x7e5
4:	hlt
	jmp 4b
