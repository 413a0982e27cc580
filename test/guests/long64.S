/*
 * long64.S — real mode -> 32-bit protected mode -> 64-bit long mode, with its own GDT and
 * page tables (built by the guest at 0x20000-0x23fff: PML4, PDPT, a PD identity-mapping the
 * first 1 GiB with 2 MiB pages, and a PD mapping the 2 MiB page at 4 GiB), so RAM must cover
 * at least 0x24000.
 *
 * I/O contract, in order (all from 64-bit code):
 *   1. OUT 0x3f8 "Hello from long mode\n" (rep outsb).
 *   2. OUT 0xec (4 bytes) low half of EFER (LME and LMA, bits 8 and 10, set).
 *   3. IN  0xe0 (4 bytes) v -> OUT 0xe4 (4 bytes) v.
 *   4. MMIO, 8 bytes: read qword at 0x100000000 (4 GiB, must not be RAM), add one, write it
 *      back to 0x100000008.
 *   5. OUT 0xe8 (4 bytes) the low half, OUT 0xe8 (4 bytes) the high half of that value; HLT.
 */
#include "guest.h"
#define PML4 0x20000
#define PDPT 0x21000
#define PD0  0x22000
#define PD4  0x23000
	.code16
	.text
	.globl _start
_start:
	REAL_TO_PM32 pm_entry

	.code32
pm_entry:
	PM32_SEGMENTS
	movl $PDPT | 3, PML4
	movl $0, PML4 + 4
	movl $PD0 | 3, PDPT
	movl $0, PDPT + 4
	movl $PD4 | 3, PDPT + 4 * 8
	movl $0, PDPT + 4 * 8 + 4
	movl $PD0, %edi
	movl $0x83, %eax		/* present, writable, 2 MiB */
	movl $512, %ecx
1:	movl %eax, (%edi)
	movl $0, 4(%edi)
	addl $0x200000, %eax
	addl $8, %edi
	decl %ecx
	jnz 1b
	movl $0x83, PD4
	movl $1, PD4 + 4		/* physical 0x1_0000_0000 */

	movl $PML4, %eax
	movl %eax, %cr3
	movl %cr4, %eax
	orl $0x20, %eax			/* PAE */
	movl %eax, %cr4
	movl $0xc0000080, %ecx		/* EFER */
	rdmsr
	orl $0x100, %eax		/* LME */
	wrmsr
	movl %cr0, %eax
	orl $0x80000000, %eax		/* PG */
	movl %eax, %cr0
	ljmpl $SEL_CODE64, $lm_entry

	.code64
lm_entry:
	movl $SEL_DATA, %eax
	movw %ax, %ds
	movw %ax, %es
	movw %ax, %ss
	movq $LOAD_ADDR, %rsp
	cld
	movabsq $hello, %rsi
	movl $hello_end - hello, %ecx
	movw $PORT_CONSOLE, %dx
	rep outsb

	movl $0xc0000080, %ecx
	rdmsr
	outl %eax, $PORT_CREG

	inl $PORT_PARAM, %eax
	outl %eax, $PORT_ECHO

	movabsq $0x100000000, %rbx
	movq (%rbx), %rax
	incq %rax
	movq %rax, 8(%rbx)

	outl %eax, $PORT_REPORT
	shrq $32, %rax
	outl %eax, $PORT_REPORT
2:	hlt
	jmp 2b

hello:	.ascii "Hello from long mode\n"
hello_end:
	GDT_TABLE
