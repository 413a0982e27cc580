/*
 * snap-count.S — flat 64-bit long-mode guest for the snapshot tests (flat.mode 'long', linked
 * and loaded at 0x10000). It counts forever, keeping state in three places a snapshot must
 * capture: registers (R12 counts by 1, R13 by 3) and guest RAM (`total`, the running sum of
 * the counts), and prints one line per step on COM1 (SSE is left out: kvm_pvm's instruction
 * emulator fails on it here):
 *   "n=XXXXXXXXXXXXXXXX s=XXXXXXXXXXXXXXXX x=XXXXXXXXXXXXXXXX"
 */
#define COM1     0x3f8
#define COM1_LSR 0x3fd
#define DELAY    20000
	.code64
	.text
	.globl _start
_start:
	jmp main

#include "plat-lib64.S"

main:
	cld
	xorq %r12, %r12
	xorq %r13, %r13
step:
	incq %r12
	addq $3, %r13
	movq total(%rip), %rax
	addq %r12, %rax
	movq %rax, total(%rip)

	leaq s_n(%rip), %rsi
	call puts64
	movq %r12, %rax
	call puthex64
	leaq s_s(%rip), %rsi
	call puts64
	movq total(%rip), %rax
	call puthex64
	leaq s_x(%rip), %rsi
	call puts64
	movq %r13, %rax
	call puthex64
	movb $'\n', %al
	call putc64

	movl $DELAY, %ecx
1:	decl %ecx
	jnz 1b
	jmp step

	.data
	.balign 8
total:	.quad 0
s_n:	.asciz "n="
s_s:	.asciz " s="
s_x:	.asciz " x="
