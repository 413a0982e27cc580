/*
 * plat-lib32.S — 32-bit helpers #included by the Machine-level test guests (plat-*.S, mb-*.S).
 * Not a guest of its own: it has no _start. Everything stays in .text (flat images are linked
 * with -Ttext only), strings included, so the macros put their strings inline after a call.
 *
 * COM1 is driven as a 16550A driver would without interrupts: wait for LSR.THRE, write THR.
 * Registers are preserved by every routine unless it says otherwise.
 */
#define COM1        0x3f8
#define COM1_LSR    (COM1 + 5)
#define LSR_DR      0x01
#define LSR_THRE    0x20
#define DEBUG_EXIT  0xf4

/* Print the string literal \s on COM1. */
.macro PRINT s
	call print_inline
	.asciz "\s"
.endm

/* Print "\label" then EAX as 8 hex digits and a newline. */
.macro REPORT label
	PRINT "\label"
	call puthex32
	call newline
.endm

/* End the machine through debug-exit with the dword in \val (code = (val << 1) | 1). */
.macro DEBUG_EXIT_WITH val
	movl \val, %eax
	outl %eax, $DEBUG_EXIT
.endm

	.code32
/* Send AL to COM1. */
putc:
	pushl %eax
	pushl %edx
	movb %al, %ah
	movw $COM1_LSR, %dx
1:	inb %dx, %al
	testb $LSR_THRE, %al
	jz 1b
	movb %ah, %al
	movw $COM1, %dx
	outb %al, %dx
	popl %edx
	popl %eax
	ret

/* Print the NUL-terminated string at ESI. */
puts:
	pushl %esi
	pushl %eax
1:	lodsb
	testb %al, %al
	jz 2f
	call putc
	jmp 1b
2:	popl %eax
	popl %esi
	ret

/* Print the string that follows the call instruction, return past its NUL. */
print_inline:
	pushl %esi
	movl 4(%esp), %esi
	call puts
1:	cmpb $0, (%esi)
	leal 1(%esi), %esi
	jne 1b
	movl %esi, 4(%esp)
	popl %esi
	ret

newline:
	pushl %eax
	movb $'\n', %al
	call putc
	popl %eax
	ret

/* Print EAX as 8 lower-case hex digits. */
puthex32:
	pushl %ebx
	pushl %ecx
	movl %eax, %ebx
	movl $8, %ecx
	jmp puthex_digits

/* Print AL as 2 hex digits. */
puthex8:
	pushl %ebx
	pushl %ecx
	movl %eax, %ebx
	shll $24, %ebx
	movl $2, %ecx
	/* fall through */

/* Print the top ECX nibbles of EBX, most significant first; pops ECX, EBX pushed by the callers. */
puthex_digits:
	pushl %eax
1:	roll $4, %ebx
	movl %ebx, %eax
	andl $0xf, %eax
	cmpb $10, %al
	jb 2f
	addb $'a' - '0' - 10, %al
2:	addb $'0', %al
	call putc
	decl %ecx
	jnz 1b
	popl %eax
	popl %ecx
	popl %ebx
	ret
