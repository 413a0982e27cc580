/*
 * plat-pci.S — flat 32-bit protected-mode guest (loaded at 0x10000) that enumerates PCI bus 0
 * through configuration mechanism #1 (CONFIG_ADDRESS 0xCF8, CONFIG_DATA 0xCFC) and sizes the
 * BARs of the first RTL8139 it finds, the way firmware does: save, write all-ones, read the
 * mask back, restore.
 *
 * Output on COM1:
 *   "pci slot=XX id=DDDDVVVV class=CCCCCCRR"   for every slot 0..31 whose vendor id is not 0xffff
 *                                               (id = config dword 0, class = dword 8)
 *   for the NIC (vendor 0x10ec):
 *   "bar0=XXXXXXXX"  "bar0mask=XXXXXXXX"  "bar0size=XXXXXXXX"  "bar0restored=XXXXXXXX"
 *   "bar1=XXXXXXXX"  "bar1mask=XXXXXXXX"  "bar1size=XXXXXXXX"  "bar1restored=XXXXXXXX"
 *   "cmd=XXXXXXXX"   command/status dword (offset 4)
 *   "mac=xx:xx:xx:xx:xx:xx"   IDR0-5 read through the restored I/O BAR
 *   "pci done"
 * debug-exit value: the number of functions found.
 */
#define CONFIG_ADDRESS 0xcf8
#define CONFIG_DATA    0xcfc
	.text
	.globl _start
_start:
	jmp main

#include "plat-lib32.S"

/* EAX = config dword at bus 0, slot EBX, register ECX. */
cfg_read:
	pushl %edx
	call cfg_address
	movw $CONFIG_DATA, %dx
	inl %dx, %eax
	popl %edx
	ret

/* Config dword at bus 0, slot EBX, register ECX = EAX. */
cfg_write:
	pushl %edx
	pushl %eax
	call cfg_address
	popl %eax
	movw $CONFIG_DATA, %dx
	outl %eax, %dx
	popl %edx
	ret

/* CONFIG_ADDRESS = enable | slot EBX << 11 | register ECX (clobbers EAX, EDX). */
cfg_address:
	movl %ebx, %eax
	shll $11, %eax
	orl %ecx, %eax
	orl $0x80000000, %eax
	movw $CONFIG_ADDRESS, %dx
	outl %eax, %dx
	ret

/* Size the BAR at register ECX of slot EBX; print "\name=", mask, size, restored. */
.macro SIZE_BAR name
	call cfg_read
	movl %eax, %esi			/* original */
	REPORT "\name="
	movl $0xffffffff, %eax
	call cfg_write
	call cfg_read
	movl %eax, %edi			/* mask */
	REPORT "\name\()mask="
	/* I/O BARs (bit 0 set) keep bits 31:2, memory BARs bits 31:4. */
	movl %edi, %eax
	testl $1, %eax
	jz 1f
	andl $0xfffffffc, %eax
	jmp 2f
1:	andl $0xfffffff0, %eax
2:	notl %eax
	incl %eax
	REPORT "\name\()size="
	movl %esi, %eax
	call cfg_write
	call cfg_read
	REPORT "\name\()restored="
.endm

main:
	cld
	xorl %ebp, %ebp			/* functions found */
	movl $-1, nic_slot
	xorl %ebx, %ebx
3:	xorl %ecx, %ecx
	call cfg_read
	cmpw $0xffff, %ax
	je 4f
	incl %ebp
	movl %eax, %esi
	PRINT "pci slot="
	movl %ebx, %eax
	call puthex8
	PRINT " id="
	movl %esi, %eax
	call puthex32
	PRINT " class="
	movl $8, %ecx
	call cfg_read
	call puthex32
	call newline
	cmpw $0x10ec, %si
	jne 4f
	cmpl $-1, nic_slot
	jne 4f
	movl %ebx, nic_slot
4:	incl %ebx
	cmpl $32, %ebx
	jb 3b

	movl nic_slot, %ebx
	cmpl $-1, %ebx
	je 6f
	movl $0x10, %ecx
	SIZE_BAR bar0
	movl $0x14, %ecx
	SIZE_BAR bar1
	movl $4, %ecx
	call cfg_read
	REPORT "cmd="

	movl $0x10, %ecx
	call cfg_read
	andl $0xfffffffc, %eax
	movl %eax, %edx			/* I/O base: IDR0 at +0 */
	PRINT "mac="
	movl $6, %ecx
5:	inb %dx, %al
	call puthex8
	incl %edx
	decl %ecx
	jz 6f
	pushl %eax
	movb $':', %al
	call putc
	popl %eax
	jmp 5b
6:	call newline
	PRINT "pci done\n"
	DEBUG_EXIT_WITH %ebp
7:	hlt
	jmp 7b

	.balign 4
nic_slot:	.long 0
