/*
 * mb-info.S — a Multiboot v1 kernel (ELF32, linked at 1 MiB) that checks what the boot loader
 * handed it and reports on COM1:
 *   "magic=XXXXXXXX" (EAX at entry)   "mbi=XXXXXXXX" (EBX)   "flags=XXXXXXXX"
 *   "mem_lower=XXXXXXXX"  "mem_upper=XXXXXXXX"  (KiB)
 *   "mmap_lower=XXXXXXXX" "mmap_upper=XXXXXXXX" (KiB of the RAM entries at 0 and at 1 MiB)
 *   "cmdline=[<string>]"  "loader=[<string>]"
 *   "mods=XXXXXXXX", and for module 0: "mod0=XXXXXXXX-XXXXXXXX" (start-end),
 *   "mod0name=[<string>]", "mod0fnv=XXXXXXXX" (FNV-1a 32 of its bytes)
 *   "kernel_end=XXXXXXXX"
 * debug-exit value: failure bits, 0 when all held:
 *   0 EAX != 0x2BADB002           1 EBX < 0x1000 (info in page 0)
 *   2 flags lack mem/cmdline/mods/mmap (bits 0, 2, 3, 6)
 *   3 mem_lower/mem_upper disagree with the memory map
 *   4 module 0 overlaps the kernel or is not page aligned      5 no module
 */
#define MB_MAGIC      0x1badb002
#define MB_FLAGS      0x00000003	/* page-align modules, memory info */
#define MB_BOOT_MAGIC 0x2badb002
	.text
	.globl _start
_start:
	jmp main

	.balign 4
mb_header:
	.long MB_MAGIC
	.long MB_FLAGS
	.long -(MB_MAGIC + MB_FLAGS)

#include "plat-lib32.S"

main:
	movl $stack_top, %esp
	cld
	movl %eax, %edi			/* magic */
	xorl %ebp, %ebp			/* failure bits */
	movl %edi, %eax
	REPORT "magic="
	cmpl $MB_BOOT_MAGIC, %eax
	je 1f
	orl $1, %ebp
1:	movl %ebx, %eax
	REPORT "mbi="
	cmpl $0x1000, %ebx
	jae 2f
	orl $2, %ebp
2:	movl (%ebx), %eax
	REPORT "flags="
	andl $0x4d, %eax
	cmpl $0x4d, %eax
	je 3f
	orl $4, %ebp
3:	movl 4(%ebx), %eax
	REPORT "mem_lower="
	movl 8(%ebx), %eax
	REPORT "mem_upper="

	/* Walk the mmap: entries are { u32 size, u64 base, u64 length, u32 type }, size excludes itself. */
	movl $-1, mmap_lower
	movl $-1, mmap_upper
	movl 48(%ebx), %esi		/* mmap_addr */
	movl 44(%ebx), %ecx
	addl %esi, %ecx			/* end */
4:	cmpl %ecx, %esi
	jae 7f
	cmpl $1, 20(%esi)		/* type RAM */
	jne 6f
	cmpl $0, 8(%esi)		/* base high */
	jne 6f
	movl 12(%esi), %eax		/* length low; these entries are below 4 GiB */
	movl 16(%esi), %edx
	shrdl $10, %edx, %eax
	cmpl $0, 4(%esi)
	jne 5f
	movl %eax, mmap_lower
	jmp 6f
5:	cmpl $0x100000, 4(%esi)
	jne 6f
	movl %eax, mmap_upper
6:	addl (%esi), %esi
	addl $4, %esi
	jmp 4b
7:	movl mmap_lower, %eax
	REPORT "mmap_lower="
	cmpl 4(%ebx), %eax
	je 8f
	orl $8, %ebp
8:	movl mmap_upper, %eax
	REPORT "mmap_upper="
	cmpl 8(%ebx), %eax
	je 9f
	orl $8, %ebp

9:	PRINT "cmdline=["
	movl 16(%ebx), %esi
	call puts
	PRINT "]\n"
	PRINT "loader=["
	movl 64(%ebx), %esi
	call puts
	PRINT "]\n"

	movl 20(%ebx), %eax
	REPORT "mods="
	testl %eax, %eax
	jnz 10f
	orl $32, %ebp
	jmp 13f
10:	movl 24(%ebx), %edx		/* mods_addr: { mod_start, mod_end, string, reserved } */
	PRINT "mod0="
	movl (%edx), %eax
	call puthex32
	PRINT "-"
	movl 4(%edx), %eax
	call puthex32
	call newline
	PRINT "mod0name=["
	movl 8(%edx), %esi
	call puts
	PRINT "]\n"
	movl (%edx), %eax
	cmpl $kernel_end, %eax
	jb 11f
	testl $0xfff, %eax
	jz 12f
11:	orl $16, %ebp
12:	movl (%edx), %esi
	movl 4(%edx), %ecx
	movl $0x811c9dc5, %eax		/* FNV-1a offset basis */
	xorl %ebx, %ebx
14:	cmpl %ecx, %esi
	jae 15f
	movb (%esi), %bl
	xorl %ebx, %eax
	imull $0x01000193, %eax, %eax	/* FNV prime */
	incl %esi
	jmp 14b
15:	REPORT "mod0fnv="

13:	movl $kernel_end, %eax
	REPORT "kernel_end="
	PRINT "multiboot done\n"
	DEBUG_EXIT_WITH %ebp
16:	hlt
	jmp 16b

	.balign 4
mmap_lower:	.long 0
mmap_upper:	.long 0
	.balign 16
stack:		.skip 1024
stack_top:
kernel_end:
