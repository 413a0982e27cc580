/*
 * plat-uart.S — flat 32-bit protected-mode guest (loaded at 0x10000) exercising COM1, polled.
 *
 * 1. Loopback: MCR = LOOP | OUT2 | RTS | DTR; MSR must then show DCD | DSR | CTS (0xb0 in the
 *    top nibble); each byte of a test string is written to THR and must come back in RBR
 *    (waiting on LSR.DR). Nothing of it may leave the UART. MCR is then set to OUT2|RTS|DTR.
 *    Prints (after leaving loopback, or the text would loop back too) "msr=XXXXXXXX" and
 *    "loopback bytes=XXXXXXXX errors=XXXXXXXX".
 * 2. Host input: prints "ready>" and reads bytes from RBR (polling LSR.DR) up to '\n'
 *    (at most 1023), then prints "echo:<line>" and "len=XXXXXXXX".
 * debug-exit value: loopback errors (0 when every byte came back unchanged and MSR matched).
 */
#define COM1_RBR (COM1 + 0)
#define COM1_MCR (COM1 + 4)
#define COM1_MSR (COM1 + 6)
#define MCR_DTR  0x01
#define MCR_RTS  0x02
#define MCR_OUT2 0x08
#define MCR_LOOP 0x10
/* Polls of LSR.DR before a loopback byte counts as lost. */
#define SPIN     10000
	.text
	.globl _start
_start:
	jmp main

#include "plat-lib32.S"

main:
	cld
	xorl %ebp, %ebp			/* loopback errors */
	movw $COM1_MCR, %dx
	movb $MCR_LOOP | MCR_OUT2 | MCR_RTS | MCR_DTR, %al
	outb %al, %dx
	movw $COM1_MSR, %dx
	xorl %eax, %eax
	inb %dx, %al
	movl %eax, msr
	andb $0xf0, %al
	cmpb $0xb0, %al
	je 1f
	incl %ebp

1:	movl $pattern, %esi
	xorl %edi, %edi			/* bytes looped back */
2:	movb (%esi), %bl
	testb %bl, %bl
	jz 5f
	movw $COM1, %dx
	movb %bl, %al
	outb %al, %dx
	movl $SPIN, %ecx
	movw $COM1_LSR, %dx
3:	inb %dx, %al
	testb $LSR_DR, %al
	jnz 4f
	loop 3b
	incl %ebp			/* never arrived */
	jmp 6f
4:	movw $COM1_RBR, %dx
	inb %dx, %al
	incl %edi
	cmpb %bl, %al
	je 6f
	incl %ebp			/* came back different */
6:	incl %esi
	jmp 2b

5:	movw $COM1_LSR, %dx		/* nothing extra may be pending */
	inb %dx, %al
	testb $LSR_DR, %al
	jz 7f
	incl %ebp
7:	movw $COM1_MCR, %dx
	movb $MCR_OUT2 | MCR_RTS | MCR_DTR, %al
	outb %al, %dx
	movl msr, %eax
	REPORT "msr="
	PRINT "loopback bytes="
	movl %edi, %eax
	call puthex32
	PRINT " errors="
	movl %ebp, %eax
	call puthex32
	call newline

	PRINT "ready>\n"
	movl $line, %edi
8:	movw $COM1_LSR, %dx
9:	inb %dx, %al
	testb $LSR_DR, %al
	jz 9b
	movw $COM1_RBR, %dx
	inb %dx, %al
	cmpb $'\n', %al
	je 10f
	movb %al, (%edi)
	incl %edi
	cmpl $line + 1023, %edi
	jb 8b
10:	movb $0, (%edi)
	PRINT "echo:"
	movl $line, %esi
	call puts
	call newline
	movl %edi, %eax
	subl $line, %eax
	REPORT "len="
	DEBUG_EXIT_WITH %ebp
11:	hlt
	jmp 11b

	.balign 4
msr:		.long 0
pattern:	.asciz "LOOPBACK<0123456789abcdefghijklmnopqrstuvwxyz>"
line:		.skip 1024
