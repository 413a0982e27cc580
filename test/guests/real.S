/*
 * real.S — a real-mode guest: port I/O of every width, rep outsb/insb and MMIO in the VGA hole.
 *
 * I/O contract, in order:
 *   1. OUT  0x3f8  "Hello from real mode\n", one byte per `out`.
 *   2. IN   0xe0 (1 byte)  -> OUT 0xe4 (1 byte) the same value;
 *      IN   0xe0 (2 bytes) -> OUT 0xe4 (2 bytes) the same value;
 *      IN   0xe0 (4 bytes) -> OUT 0xe4 (4 bytes) the same value.
 *   3. rep outsb of "rep outsb works" (15 bytes) to 0xfa.
 *   4. rep insb of 16 bytes from 0xfb into RAM, then OUT 0xf8 (2 bytes) their 16-bit sum.
 *   5. MMIO (RAM must not cover 0xa0000): read dword at 0xa0000, write it + 1 to 0xa0004,
 *      write byte 0x5a to 0xa0008.
 *   6. OUT 0xe8 (4 bytes) 0x600dc0de, then HLT.
 */
#include "guest.h"
	.code16
	.text
	.globl _start
_start:
	cld
	/* 1: a string, one out per byte */
	movw $hello, %si
	movw $PORT_CONSOLE, %dx
1:	lodsb
	testb %al, %al
	jz 2f
	outb %al, %dx
	jmp 1b
2:
	/* 2: echo every width */
	inb $PORT_PARAM, %al
	outb %al, $PORT_ECHO
	inw $PORT_PARAM, %ax
	outw %ax, $PORT_ECHO
	inl $PORT_PARAM, %eax
	outl %eax, $PORT_ECHO

	/* 3: rep outsb */
	movw $outs_str, %si
	movw $outs_end - outs_str, %cx
	movw $PORT_OUTS, %dx
	rep outsb

	/* 4: rep insb into buf, then a 16-bit sum */
	movw $buf, %di
	movw $16, %cx
	movw $PORT_INS, %dx
	rep insb
	movw $buf, %si
	movw $16, %cx
	xorw %bx, %bx
	xorb %ah, %ah
3:	lodsb
	addw %ax, %bx
	loop 3b
	movw %bx, %ax
	outw %ax, $PORT_CSUM

	/* 5: MMIO at 0xa0000 */
	movw $0xa000, %ax
	movw %ax, %es
	movl %es:0, %eax
	incl %eax
	movl %eax, %es:4
	movb $0x5a, %es:8

	/* 6: report and halt */
	movl $0x600dc0de, %eax
	outl %eax, $PORT_REPORT
4:	hlt
	jmp 4b

hello:	.asciz "Hello from real mode\n"
outs_str: .ascii "rep outsb works"
outs_end:
buf:	.fill 16, 1, 0
