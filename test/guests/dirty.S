/*
 * dirty.S — writes one byte to each guest-physical address the test hands it, for dirty-page
 * logging tests. Protected mode; nothing else is written after the first report (no stack
 * use, GDT accessed bits preset).
 *
 * I/O contract:
 *   1. OUT 0xe8 (4 bytes) 1: in protected mode, about to take addresses.
 *   2. repeat: IN 0xe0 (4 bytes) a; if a == 0xffffffff stop, else write byte 0xa5 to [a].
 *   3. OUT 0xe8 (4 bytes) 2, then HLT.
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
	movl $1, %eax
	outl %eax, $PORT_REPORT
1:	inl $PORT_PARAM, %eax
	cmpl $0xffffffff, %eax
	je 2f
	movb $0xa5, (%eax)
	jmp 1b
2:	movl $2, %eax
	outl %eax, $PORT_REPORT
3:	hlt
	jmp 3b
	GDT_TABLE
