/*
 * plat-real.S — flat real-mode guest for Machine tests (flat.mode 'real', loaded at 0x10000:
 * CS = DS = SS = 0x1000, IP = 0, so it is linked at 0 and addresses its data by offset).
 *
 * Output on COM1 (polling LSR.THRE), then debug-exit:
 *   "Hello from real mode, cs=XXXX cr0=XXXX"   (CS as loaded; low CR0 word: PE clear)
 *   "sum=XXXX"                                  (1 + 2 + ... + 100, computed by the guest)
 *   debug-exit: p_value to port 0xf4, p_width (1, 2 or 4) bytes wide.
 */
#define COM1     0x3f8
#define COM1_LSR 0x3fd
#define DEBUG_EXIT 0xf4
	.code16
	.text
	.globl _start
_start:
	jmp main

	.balign 4
	.ascii "PRM0"
p_value:	.long 0x15
p_width:	.long 1

/* AL -> COM1 */
putc16:
	pushw %ax
	pushw %dx
	movb %al, %ah
	movw $COM1_LSR, %dx
1:	inb %dx, %al
	testb $0x20, %al
	jz 1b
	movb %ah, %al
	movw $COM1, %dx
	outb %al, %dx
	popw %dx
	popw %ax
	ret

/* NUL-terminated string at DS:SI -> COM1 */
puts16:
	pushw %ax
	pushw %si
1:	lodsb
	testb %al, %al
	jz 2f
	call putc16
	jmp 1b
2:	popw %si
	popw %ax
	ret

/* AX as 4 hex digits */
puthex16:
	pushw %ax
	pushw %bx
	pushw %cx
	movw %ax, %bx
	movw $4, %cx
1:	rolw $4, %bx
	movw %bx, %ax
	andw $0xf, %ax
	cmpb $10, %al
	jb 2f
	addb $'a' - '0' - 10, %al
2:	addb $'0', %al
	call putc16
	loop 1b
	popw %cx
	popw %bx
	popw %ax
	ret

main:
	cld
	movw $hello, %si
	call puts16
	movw %cs, %ax
	call puthex16
	movw $cr0_label, %si
	call puts16
	smsw %ax
	call puthex16
	movw $sum_label, %si
	call puts16

	xorw %ax, %ax
	movw $100, %cx
1:	addw %cx, %ax
	loop 1b
	call puthex16
	movb $'\n', %al
	call putc16

	movl p_value, %eax
	movl p_width, %ecx
	cmpl $1, %ecx
	je 2f
	cmpl $2, %ecx
	je 3f
	outl %eax, $DEBUG_EXIT
	jmp 4f
2:	outb %al, $DEBUG_EXIT
	jmp 4f
3:	outw %ax, $DEBUG_EXIT
4:	hlt
	jmp 4b

hello:		.asciz "Hello from real mode, cs="
cr0_label:	.asciz " cr0="
sum_label:	.asciz "\nsum="
