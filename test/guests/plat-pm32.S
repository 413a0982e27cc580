/*
 * plat-pm32.S — flat 32-bit protected-mode guest for Machine tests (flat.mode 'protected',
 * linked and loaded at 0x10000; the loader's GDT gives flat CS/DS and ESP = 0x8000).
 *
 * Output on COM1, then debug-exit:
 *   "Hello from protected mode, cr0=XXXXXXXX"    (CR0 as the guest sees it: PE set, PG clear)
 *   "sum=XXXXXXXX"                                (1 + 2 + ... + 1000, computed by the guest)
 *   debug-exit: writes p_value to port 0xf4 with an access p_width (1, 2 or 4) bytes wide.
 * The host may patch the parameter block that follows the "PRM0" marker before loading.
 */
	.text
	.globl _start
_start:
	jmp main

	.balign 4
	.ascii "PRM0"
p_value:	.long 0x2a
p_width:	.long 4

#include "plat-lib32.S"

main:
	cld
	PRINT "Hello from protected mode, cr0="
	movl %cr0, %eax
	call puthex32
	call newline

	xorl %eax, %eax
	movl $1000, %ecx
1:	addl %ecx, %eax
	loop 1b
	REPORT "sum="

	movl p_value, %eax
	movl p_width, %ecx
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
