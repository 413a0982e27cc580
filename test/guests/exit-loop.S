/*
 * exit-loop.S — the exit round-trip benchmark guest (bench/exit-roundtrip.ts, bench/c/exit-loop.c).
 *
 * Real mode. The loader sets ECX = iterations (>= 1) and EBX = 0 for PIO or 1 for MMIO.
 *   PIO:  ECX times OUT 0xfd (1 byte).
 *   MMIO: ECX times a 4-byte write to 0xa0000 (RAM must not cover it).
 * Then OUT 0xe8 (4 bytes) 0x600dc0de and HLT.
 */
#include "guest.h"
	.code16
	.text
	.globl _start
_start:
	movw $0xa000, %ax
	movw %ax, %es
	xorl %eax, %eax
	testl %ebx, %ebx
	jnz mmio
pio:	outb %al, $PORT_LOOP
	decl %ecx
	jnz pio
	jmp done
mmio:	movl %eax, %es:0
	decl %ecx
	jnz mmio
done:	movl $0x600dc0de, %eax
	outl %eax, $PORT_REPORT
1:	hlt
	jmp 1b
