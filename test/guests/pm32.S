/*
 * pm32.S — switches from real mode to 32-bit protected mode with its own GDT, then does
 * port I/O and MMIO above 3 GiB.
 *
 * I/O contract, in order:
 *   1. OUT 0x3f8 "Hello from protected mode\n" (rep outsb).
 *   2. OUT 0xec (4 bytes) CR0 (bit 0, PE, set).
 *   3. IN  0xe0 (4 bytes) v -> OUT 0xe4 (4 bytes) v.
 *   4. MMIO: read dword at 0xd0000000, add one, write it back to 0xd0000000.
 *   5. OUT 0xe8 (4 bytes) the value written, then HLT.
 */
#include "guest.h"
	.code16
	.text
	.globl _start
_start:
	REAL_TO_PM32 pm_entry

	.code32
pm_entry:
	PM32_SEGMENTS
	cld
	movl $hello, %esi
	movl $hello_end - hello, %ecx
	movw $PORT_CONSOLE, %dx
	rep outsb

	movl %cr0, %eax
	outl %eax, $PORT_CREG

	inl $PORT_PARAM, %eax
	outl %eax, $PORT_ECHO

	movl 0xd0000000, %eax
	incl %eax
	movl %eax, 0xd0000000

	outl %eax, $PORT_REPORT
1:	hlt
	jmp 1b

hello:	.ascii "Hello from protected mode\n"
hello_end:
	GDT_TABLE
