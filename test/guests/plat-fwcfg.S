/*
 * plat-fwcfg.S — flat 32-bit protected-mode guest (loaded at 0x10000) that reads QEMU's
 * fw_cfg through the traditional I/O interface: 16-bit selector at 0x510, data bytes at 0x511.
 *
 * Output on COM1:
 *   "sig=QEMU"                  key 0x0000, 4 bytes
 *   "id=XXXXXXXX"               key 0x0001, u32 LE feature bits
 *   "cpus=XXXXXXXX"             key 0x0005, u16 LE boot CPU count
 *   "files=XXXXXXXX"            key 0x0019, u32 BE file count, then one line per entry:
 *   "file size=XXXXXXXX select=XXXXXXXX name=<name>"
 *   "e820 size=XXXXXXXX count=XXXXXXXX rest=XXXXXXXX"   etc/e820 size, size / 20, size % 20
 *   "e820 addr=XXXXXXXXXXXXXXXX len=XXXXXXXXXXXXXXXX type=XXXXXXXX"   each entry of etc/e820
 * debug-exit value: 0 when the signature is "QEMU", etc/e820 is listed and its size is a whole
 * number of 20-byte entries; otherwise bit 0 (signature), bit 1 (no etc/e820), bit 2 (size).
 */
#define FW_CFG_SEL  0x510
#define FW_CFG_DATA 0x511
	.text
	.globl _start
_start:
	jmp main

#include "plat-lib32.S"

/* Select fw_cfg item AX. */
fw_select:
	pushl %edx
	movw $FW_CFG_SEL, %dx
	outw %ax, %dx
	popl %edx
	ret

/* Read the next ECX (1..4) data bytes as a big-endian number into EAX. */
fw_read_be:
	pushl %ecx
	pushl %edx
	movw $FW_CFG_DATA, %dx
	xorl %eax, %eax
1:	shll $8, %eax
	inb %dx, %al
	decl %ecx
	jnz 1b
	popl %edx
	popl %ecx
	ret

/* Read the next ECX (1..4) data bytes as a little-endian number into EAX. */
fw_read_le:
	pushl %ecx
	pushl %edx
	movw $FW_CFG_DATA, %dx
	xorl %eax, %eax
	pushl %ecx
1:	inb %dx, %al
	rorl $8, %eax
	decl %ecx
	jnz 1b
	popl %ecx
	negl %ecx
	leal 4(%ecx), %ecx		/* 4 - n bytes of zero at the top to drop */
	shll $3, %ecx
	shrl %cl, %eax
	popl %edx
	popl %ecx
	ret

main:
	cld
	xorl %ebp, %ebp			/* failure bits */

	movw $0x0000, %ax
	call fw_select
	movl $4, %ecx
	call fw_read_be
	cmpl $0x51454d55, %eax		/* "QEMU" read as big-endian */
	je 1f
	orl $1, %ebp
1:	PRINT "sig="
	movl $4, %ecx
	movl %eax, %ebx
2:	roll $8, %ebx
	movb %bl, %al
	call putc
	loop 2b
	call newline

	movw $0x0001, %ax
	call fw_select
	movl $4, %ecx
	call fw_read_le
	REPORT "id="

	movw $0x0005, %ax
	call fw_select
	movl $2, %ecx
	call fw_read_le
	REPORT "cpus="

	movw $0x0019, %ax
	call fw_select
	movl $4, %ecx
	call fw_read_be
	REPORT "files="
	movl %eax, %esi			/* entries left */
	movl $0, e820_select
3:	testl %esi, %esi
	jz 6f
	movl $4, %ecx
	call fw_read_be
	movl %eax, %ebx			/* size */
	movl $2, %ecx
	call fw_read_be
	movl %eax, %edi			/* select */
	call fw_read_be			/* reserved (2 bytes) */
	pushl %esi
	movl $name_buf, %esi		/* name[56] */
	movl $56, %ecx
	movw $FW_CFG_DATA, %dx
4:	inb %dx, %al
	movb %al, (%esi)
	incl %esi
	loop 4b
	movb $0, (%esi)
	PRINT "file size="
	movl %ebx, %eax
	call puthex32
	PRINT " select="
	movl %edi, %eax
	call puthex32
	PRINT " name="
	movl $name_buf, %esi
	call puts
	call newline
	/* Is it "etc/e820"? */
	movl $name_buf, %esi
	movl $e820_name, %edx
5:	movb (%esi), %al
	cmpb (%edx), %al
	jne 7f
	incl %esi
	incl %edx
	testb %al, %al
	jnz 5b
	movl %ebx, e820_size
	movl %edi, e820_select
7:	popl %esi
	decl %esi
	jmp 3b

6:	movl e820_select, %eax
	testl %eax, %eax
	jnz 8f
	orl $2, %ebp
	jmp done
8:	call fw_select
	PRINT "e820 size="
	movl e820_size, %eax
	call puthex32
	xorl %edx, %edx
	movl $20, %ecx
	divl %ecx
	movl %eax, %esi			/* whole entries */
	PRINT " count="
	call puthex32
	PRINT " rest="
	movl %edx, %eax
	call puthex32
	call newline
	testl %edx, %edx
	jz 9f
	orl $4, %ebp
9:	testl %esi, %esi
	jz done
	PRINT "e820 addr="
	movl $4, %ecx
	call fw_read_le
	movl %eax, %ebx
	call fw_read_le
	call puthex32
	movl %ebx, %eax
	call puthex32
	PRINT " len="
	call fw_read_le
	movl %eax, %ebx
	call fw_read_le
	call puthex32
	movl %ebx, %eax
	call puthex32
	PRINT " type="
	call fw_read_le
	call puthex32
	call newline
	decl %esi
	jmp 9b

done:
	PRINT "fw_cfg done\n"
	DEBUG_EXIT_WITH %ebp
10:	hlt
	jmp 10b

e820_name:	.asciz "etc/e820"
	.balign 4
e820_select:	.long 0
e820_size:	.long 0
name_buf:	.skip 60
