/*
 * plat-lib64.S — 64-bit COM1 helpers #included by the long-mode test guests (plat-long.S,
 * snap-count.S): putc64 (AL), puts64 (NUL-terminated string at RSI), puthex64 (RAX as 16
 * hex digits). Polls LSR.THRE before each byte. The includer defines COM1 and COM1_LSR.
 */
/* AL -> COM1 */
putc64:
	pushq %rax
	pushq %rdx
	movb %al, %ah
	movw $COM1_LSR, %dx
1:	inb %dx, %al
	testb $0x20, %al
	jz 1b
	movb %ah, %al
	movw $COM1, %dx
	outb %al, %dx
	popq %rdx
	popq %rax
	ret

/* NUL-terminated string at RSI -> COM1 */
puts64:
	pushq %rax
	pushq %rsi
1:	lodsb
	testb %al, %al
	jz 2f
	call putc64
	jmp 1b
2:	popq %rsi
	popq %rax
	ret

/* RAX as 16 hex digits */
puthex64:
	pushq %rax
	pushq %rbx
	pushq %rcx
	movq %rax, %rbx
	movl $16, %ecx
1:	rolq $4, %rbx
	movq %rbx, %rax
	andl $0xf, %eax
	cmpb $10, %al
	jb 2f
	addb $'a' - '0' - 10, %al
2:	addb $'0', %al
	call putc64
	decl %ecx
	jnz 1b
	popq %rcx
	popq %rbx
	popq %rax
	ret

