/*
 * plat-reset.S — flat 32-bit protected-mode guest (loaded at 0x10000) that ends the machine
 * the way the host patched into its parameter block (after the "PRM0" marker):
 *   1: i8042 "pulse reset line" command 0xFE to port 0x64      -> reason 'reboot'
 *   2: ACPI PM1a_CNT (0x604) = SLP_TYP 5 | SLP_EN (0x3400)     -> reason 'poweroff'
 *   3: triple fault: LIDT with limit 0, then UD2               -> reason 'shutdown'
 * Prints "action=XXXXXXXX" first; if the machine is still running afterwards it prints
 * "still running" and debug-exits with 0xee.
 */
#define I8042_CMD     0x64
#define PM1A_CNT      0x604
#define SLP_S5        ((5 << 10) | (1 << 13))
	.text
	.globl _start
_start:
	jmp main

	.balign 4
	.ascii "PRM0"
p_action:	.long 0

#include "plat-lib32.S"

main:
	cld
	movl p_action, %eax
	REPORT "action="
	cmpl $1, %eax
	je kbd
	cmpl $2, %eax
	je s5
	cmpl $3, %eax
	je ud
	jmp alive

kbd:	movb $0xfe, %al
	outb %al, $I8042_CMD
	jmp alive
s5:	movw $PM1A_CNT, %dx
	movw $SLP_S5, %ax
	outw %ax, %dx
	jmp alive
ud:	lidt empty_idt
	PRINT "idt empty, ud2\n"
	ud2
alive:	PRINT "still running\n"
	DEBUG_EXIT_WITH $0xee
1:	hlt
	jmp 1b

	.balign 4
	.word 0
empty_idt:
	.word 0				/* limit 0: no vector is present */
	.long 0
