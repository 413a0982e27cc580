/*
 * idle.S — reports once, then sits in HLT with interrupts off forever. With the in-kernel
 * irqchip the HLT never leaves the kernel, so a run loop over it only ends when the host
 * stops it (AbortSignal / kick).
 *
 * I/O contract: OUT 0xe8 (4 bytes) 1, then CLI; HLT (looping).
 */
#include "guest.h"
	.code16
	.text
	.globl _start
_start:
	cli
	movl $1, %eax
	outl %eax, $PORT_REPORT
1:	hlt
	jmp 1b
