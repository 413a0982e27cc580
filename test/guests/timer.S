/*
 * timer.S — interrupts from the in-kernel PIT through the in-kernel PIC, taken while the
 * vCPU sits in HLT. Needs vm.createIrqchip() and vm.createPit2().
 *
 * Real mode on purpose: KVM's instruction emulator (all this host's kvm_pvm has) implements
 * IRET only in real mode, so a protected-mode handler could not return. The guest loads its
 * interrupt table (the real-mode IVT at 0, IDTR limit 0x3ff) with vector 0x20 = tick counter
 * and 0x21-0x2f = acknowledge-and-return, remaps the master PIC to 0x20 / slave to 0x28 with
 * only IRQ0 unmasked, and programs PIT channel 0 as a ~100 Hz rate generator (mode 2,
 * divisor 11932).
 *
 * I/O contract:
 *   1. IN  0xe0 (4 bytes) N, the number of ticks to wait for (N >= 1).
 *   2. for every tick k = 1, 2, ...: OUT 0xf0 (4 bytes) k, from the interrupt handler.
 *   3. the handler that counts tick N masks IRQ0 before its EOI, so no tick N+1 can be
 *      taken; the main loop (`sti; hlt` until the counter reaches N) then
 *      OUTs 0xe8 (4 bytes) the tick count and halts with interrupts off (stays in HLT).
 *
 * Masking in the handler, with IF clear, is what makes the count exact. Masking after the
 * loop is not: IRET sets IF again and opens no interrupt shadow, so when ticks queue up (KVM's
 * PIT re-injects the ones a descheduled vCPU missed, common on a loaded host) the next one is
 * taken between the IRET and the loop's CLI, and the guest counts N+1, N+2...
 */
#include "guest.h"
#define VEC_BASE 0x20
#define VEC_END  0x30
	.code16
	.text
	.globl _start
_start:
	cli
	cld
	/* IVT entries VEC_BASE..VEC_END-1: offset:segment, segment 0 */
	movw $VEC_BASE * 4, %di
1:	movw $spurious, %ax
	cmpw $VEC_BASE * 4, %di
	jne 2f
	movw $tick, %ax
2:	movw %ax, (%di)
	movw $0, 2(%di)
	addw $4, %di
	cmpw $VEC_END * 4, %di
	jne 1b
	lidtl ivt_desc

	/* PICs: ICW1..ICW4, master at 0x20, slave at 0x28, only IRQ0 unmasked */
	movb $0x11, %al
	outb %al, $0x20
	outb %al, $0xa0
	movb $VEC_BASE, %al
	outb %al, $0x21
	movb $VEC_BASE + 8, %al
	outb %al, $0xa1
	movb $0x04, %al
	outb %al, $0x21
	movb $0x02, %al
	outb %al, $0xa1
	movb $0x01, %al
	outb %al, $0x21
	outb %al, $0xa1
	movb $0xfe, %al
	outb %al, $0x21
	movb $0xff, %al
	outb %al, $0xa1

	inl $PORT_PARAM, %eax
	movl %eax, target

	/* PIT channel 0, lobyte/hibyte, mode 2 */
	movb $0x34, %al
	outb %al, $0x43
	movw $11932, %ax
	outb %al, $0x40
	movb %ah, %al
	outb %al, $0x40

wait:
	sti
	hlt
	cli
	movl ticks, %eax
	cmpl target, %eax
	jb wait

	movl ticks, %eax
	outl %eax, $PORT_REPORT
3:	hlt
	jmp 3b

tick:
	pushl %eax
	incl %cs:ticks
	movl %cs:ticks, %eax
	outl %eax, $PORT_TICK
	cmpl %cs:target, %eax
	jb 1f
	movb $0xff, %al			/* the last tick: mask IRQ0 (IF is clear here) */
	outb %al, $0x21
1:	movb $0x20, %al			/* non-specific EOI */
	outb %al, $0x20
	popl %eax
	iret

spurious:
	pushw %ax
	movb $0x20, %al
	outb %al, $0xa0
	outb %al, $0x20
	popw %ax
	iret

	.balign 4
ticks:	.long 0
target:	.long 0
ivt_desc:
	.word 0x3ff
	.long 0
