/*
 * bz32-entry.S — the protected-mode part of a bzImage without a 64-bit entry (the test wraps it
 * in a setup header with xloadflags 0, code32_start = its link address 1 MiB). It checks the
 * state the 32-bit boot protocol (Linux Documentation/arch/x86/boot.rst) promises at
 * code32_start and reports on COM1:
 *   "esi=XXXXXXXX" "cs=XXXXXXXX" "ds=XXXXXXXX" "cr0=XXXXXXXX" "eflags=XXXXXXXX"
 *   "bootflag=XXXXXXXX" (boot_params.hdr.boot_flag) "cmdline=[<string at cmd_line_ptr>]"
 * debug-exit value: failure bits, 0 when all held:
 *   0 CS != __BOOT_CS (0x10)     1 DS/ES/SS != __BOOT_DS (0x18)   2 CR0.PE clear or CR0.PG set
 *   3 EFLAGS.IF set              4 EBP, EDI or EBX not zero       5 no 0xAA55 / "HdrS" at ESI
 * It also reads 0xfffffff0 through DS: with a limit short of 4 GiB that faults, and with the
 * empty boot IDT a fault ends the machine as a triple fault instead of a debug-exit.
 */
	.text
	.globl _start
	.code32
_start:
	jmp main

#include "plat-lib32.S"

main:
	/* Before anything touches them: the registers boot.rst fixes. */
	movl %ebp, saved_ebp
	movl %edi, saved_edi
	movl %ebx, saved_ebx
	pushfl
	popl saved_eflags
	movl %esi, saved_esi
	movl $stack_top, %esp
	cld
	xorl %ebp, %ebp			/* failure bits */

	movl saved_esi, %eax
	REPORT "esi="
	xorl %eax, %eax
	movw %cs, %ax
	REPORT "cs="
	cmpl $0x10, %eax
	je 1f
	orl $1, %ebp
1:	movw %ds, %ax
	REPORT "ds="
	movw %ds, %ax
	movw %es, %bx
	movw %ss, %cx
	cmpw $0x18, %ax
	jne 2f
	cmpw $0x18, %bx
	jne 2f
	cmpw $0x18, %cx
	je 3f
2:	orl $2, %ebp
3:	movl %cr0, %eax
	REPORT "cr0="
	testl $1, %eax
	jz 4f
	testl $0x80000000, %eax
	jz 5f
4:	orl $4, %ebp
5:	movl saved_eflags, %eax
	REPORT "eflags="
	testl $0x200, %eax
	jz 6f
	orl $8, %ebp
6:	movl saved_ebp, %eax
	orl saved_edi, %eax
	orl saved_ebx, %eax
	jz 7f
	orl $16, %ebp
7:	movl saved_esi, %esi
	movzwl 0x1fe(%esi), %eax
	REPORT "bootflag="
	cmpl $0xaa55, %eax
	jne 8f
	cmpl $0x53726448, 0x202(%esi)
	je 9f
8:	orl $32, %ebp
9:	/* The top of a flat 4 GiB segment reads (all-ones from the unbacked hole) without a #GP. */
	movl 0xfffffff0, %eax
	PRINT "cmdline=["
	movl saved_esi, %esi
	movl 0x228(%esi), %esi
	call puts
	PRINT "]\n"
	PRINT "bz32 done\n"
	DEBUG_EXIT_WITH %ebp
	hlt

	.balign 4
saved_ebp:	.long 0
saved_edi:	.long 0
saved_ebx:	.long 0
saved_esi:	.long 0
saved_eflags:	.long 0
	.balign 16
	.space 1024
stack_top:
