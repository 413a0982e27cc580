/*
 * smp.S — the BSP starts the APs through its xAPIC (MMIO at 0xfee00000, in-kernel LAPIC:
 * needs vm.createIrqchip() and every vCPU running), and each AP says hello.
 *
 * BSP: real mode -> 32-bit protected mode; enables its LAPIC (SVR = 0x1ff), broadcasts INIT
 * then a STARTUP IPI with vector 0x09 (all-excluding-self), waits until the APs have counted
 * themselves in.
 * AP: starts in real mode at 0x9000 (CS=0x0900, IP=0: the trampoline below, page-aligned in
 * this image), switches to protected mode with the same GDT, reads its APIC id from
 * 0xfee00020, reports it, atomically increments the AP counter, halts with interrupts off.
 *
 * I/O contract:
 *   BSP: IN 0xe0 (4 bytes) the number of vCPUs N (>= 1).
 *   each AP: OUT 0xfc (1 byte) its APIC id.
 *   BSP: once N-1 APs counted in, OUT 0xe8 (4 bytes) the AP count, then HLT (interrupts off).
 */
#include "guest.h"
#define TRAMPOLINE 0x9000
#define APIC_BASE 0xfee00000
	.code16
	.text
	.globl _start
_start:
	REAL_TO_PM32 bsp32

	.code32
bsp32:
	PM32_SEGMENTS
	inl $PORT_PARAM, %eax
	decl %eax
	movl %eax, expected
	movl $0x1ff, APIC_BASE + 0xf0		/* SVR: software enable, spurious vector 0xff */
	movl $0, APIC_BASE + 0x310		/* ICR high: destination unused with shorthand */
	movl $0x000c4500, APIC_BASE + 0x300	/* INIT, all excluding self */
	movl $10000, %ecx
1:	decl %ecx
	jnz 1b
	movl $(0x000c4600 | (TRAMPOLINE >> 12)), APIC_BASE + 0x300	/* STARTUP */
2:	movl ap_count, %eax
	cmpl expected, %eax
	jb 2b
	outl %eax, $PORT_REPORT
	cli
3:	hlt
	jmp 3b

	.balign 4
ap_count: .long 0
expected: .long 0
	GDT_TABLE

	.org TRAMPOLINE - LOAD_ADDR
	.code16
ap_start:
	cli
	xorw %ax, %ax
	movw %ax, %ds
	lgdtl gdt_desc
	movl %cr0, %eax
	orl $1, %eax
	movl %eax, %cr0
	ljmpl $SEL_CODE32, $ap32

	.code32
ap32:
	movw $SEL_DATA, %ax
	movw %ax, %ds
	movw %ax, %es
	movw %ax, %ss
	movl APIC_BASE + 0x20, %eax
	shrl $24, %eax
	outb %al, $PORT_APIC_ID
	lock incl ap_count
4:	cli
	hlt
	jmp 4b
