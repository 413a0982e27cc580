/*
 * plat-long.S — flat 64-bit long-mode guest for Machine tests (flat.mode 'long', linked and
 * loaded at 0x10000; the loader identity-maps the first 4 GiB, RSP = 0x8000).
 *
 * Output on COM1 (polling LSR.THRE), then debug-exit:
 *   "Hello from long mode, efer=XXXXXXXXXXXXXXXX"   (EFER: LME and LMA set)
 *   "product=XXXXXXXXXXXXXXXX"                      (0x123456789 * 0x10001, a 64-bit result)
 *   debug-exit: p_value to port 0xf4, p_width (1, 2 or 4) bytes wide.
 */
#define COM1     0x3f8
#define COM1_LSR 0x3fd
#define DEBUG_EXIT 0xf4
	.code64
	.text
	.globl _start
_start:
	jmp main

	.balign 4
	.ascii "PRM0"
p_value:	.long 0x40
p_width:	.long 2

#include "plat-lib64.S"

main:
	cld
	leaq hello(%rip), %rsi
	call puts64
	movl $0xc0000080, %ecx
	rdmsr
	shlq $32, %rdx
	orq %rdx, %rax
	call puthex64
	leaq product(%rip), %rsi
	call puts64
	movabsq $0x123456789, %rax
	movq $0x10001, %rbx
	imulq %rbx, %rax
	call puthex64
	movb $'\n', %al
	call putc64

	movl p_value(%rip), %eax
	movl p_width(%rip), %ecx
	cmpl $1, %ecx
	je 2f
	cmpl $2, %ecx
	je 3f
	outl %eax, $DEBUG_EXIT
	jmp 4f
2:	outb %al, $DEBUG_EXIT
	jmp 4f
3:	outw %ax, $DEBUG_EXIT
4:	hlt
	jmp 4b

hello:		.asciz "Hello from long mode, efer="
product:	.asciz "\nproduct="
