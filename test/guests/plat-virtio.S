/*
 * plat-virtio.S — flat 32-bit protected-mode guest (loaded at 0x10000, paging off) that drives
 * the virtio-console as a minimal driver would, by polling: it finds the 1af4:1043 function,
 * walks its capability list for the common and notify structures, negotiates VERSION_1 +
 * MULTIPORT, sets up the control queues and port 1's queues (8 entries each, in RAM at
 * 0x100000 + 0x1000 * queue: descriptors +0, available ring +0x200, used ring +0x400), and:
 *   - sends DEVICE_READY, reads DEVICE_ADD; sends PORT_READY(1), reads PORT_NAME and PORT_OPEN;
 *   - opens port 1, writes "hello from the guest\n" on its transmit queue and reads what the
 *     host writes into a receive buffer;
 *   - publishes a descriptor chain that loops and reads DEVICE_NEEDS_RESET back from status.
 *
 * Output on COM1 (hex values): "slot=", "status=" after FEATURES_OK, "ctl=" id and "ev=" event
 * of each control message, "name=<port name>", "rx=<host text>", "broken=" status at the end,
 * then, with a real IDT, the 8259s masked and IOAPIC pin 17 routed to vector 0x30: "irqs=" and
 * "isrseen=" after the first INTx (the handler reads ISR and EOIs), "irqs2=" after one more
 * transmit buffer ("!") raised a fresh one;
 * "isr=" / "isr2=" (ISR read twice: the first read clears it), "virtio done". debug-exit value: 1 on success, 0xdead0000 | step on a timeout.
 */
#define CONFIG_ADDRESS 0xcf8
#define CONFIG_DATA    0xcfc
#define QBASE          0x100000
#define BUF            0x200000
	.text
	.globl _start
_start:
	jmp main

#include "plat-lib32.S"

/* EAX = config dword at bus 0, slot EBX, register ECX. */
cfg_read:
	pushl %edx
	movl %ebx, %eax
	shll $11, %eax
	orl %ecx, %eax
	orl $0x80000000, %eax
	movw $CONFIG_ADDRESS, %dx
	outl %eax, %dx
	movw $CONFIG_DATA, %dx
	inl %dx, %eax
	popl %edx
	ret

/* Config dword at slot EBX, register ECX = EAX. */
cfg_write:
	pushl %edx
	pushl %eax
	movl %ebx, %eax
	shll $11, %eax
	orl %ecx, %eax
	orl $0x80000000, %eax
	movw $CONFIG_ADDRESS, %dx
	outl %eax, %dx
	popl %eax
	movw $CONFIG_DATA, %dx
	outl %eax, %dx
	popl %edx
	ret

/* Set up queue EAX: select, size 8, the three addresses, enable. */
setup_queue:
	pusha
	movl common, %edi
	movw %ax, 0x16(%edi)
	movw $8, 0x18(%edi)
	movl %eax, %ebx
	shll $12, %ebx
	addl $QBASE, %ebx
	movl %ebx, 0x20(%edi)
	movl $0, 0x24(%edi)
	leal 0x200(%ebx), %ecx
	movl %ecx, 0x28(%edi)
	movl $0, 0x2c(%edi)
	leal 0x400(%ebx), %ecx
	movl %ecx, 0x30(%edi)
	movl $0, 0x34(%edi)
	movw $1, 0x1c(%edi)
	popa
	ret

/* Publish one buffer on queue EAX: address ECX, length EDX, flags SI; then notify the queue. */
post:
	pusha
	movl %eax, %ebp
	shll $12, %eax
	addl $QBASE, %eax
	movl %eax, %edi
	movzwl 0x202(%edi), %ebx
	andl $7, %ebx
	movl %ebx, %eax
	shll $4, %eax
	movl %ecx, (%edi,%eax)
	movl $0, 4(%edi,%eax)
	movl %edx, 8(%edi,%eax)
	movw %si, 12(%edi,%eax)
	movw $0, 14(%edi,%eax)
	movw %bx, 0x204(%edi,%ebx,2)
	incw 0x202(%edi)
	movl mult, %eax
	imull %ebp, %eax
	addl notify, %eax
	movw %bp, (%eax)
	popa
	ret

/* Wait until queue EAX's used index reaches EBX; on timeout exit with 0xdead0000 | EBX. */
wait_used:
	pushl %ecx
	pushl %edi
	movl %eax, %edi
	shll $12, %edi
	addl $QBASE, %edi
	movl $0x04000000, %ecx
1:	movzwl 0x402(%edi), %eax
	cmpl %ebx, %eax
	jae 2f
	pause
	decl %ecx
	jnz 1b
	PRINT "timeout\n"
	movl %ebx, %eax
	orl $0xdead0000, %eax
	outl %eax, $DEBUG_EXIT
2:	popl %edi
	popl %ecx
	ret

/* Print control message at EDI as "ctl=" id, "ev=" event. */
show_ctl:
	movl (%edi), %eax
	REPORT "ctl="
	movzwl 4(%edi), %eax
	REPORT "ev="
	ret

/* Send control message id EAX, event ECX (value 1) on queue 3 from buffer ESI-slot EDX. */
send_ctl:
	pusha
	movl %edx, %edi
	shll $4, %edi
	addl $BUF + 0x1000, %edi
	movl %eax, (%edi)
	movw %cx, 4(%edi)
	movw $1, 6(%edi)
	movl $3, %eax
	movl %edi, %ecx
	movl $8, %edx
	xorl %esi, %esi
	call post
	popa
	ret

#define IDT     0x300000
#define IOAPIC  0xfec00000
#define LAPIC   0xfee00000
#define VECTOR  0x30

/* Mask the 8259s, enable the LAPIC, route IOAPIC pin 17 to VECTOR, install the IDT gate. */
intx_setup:
	pusha
	movb $0xff, %al
	outb %al, $0x21
	outb %al, $0xa1
	movl $0x1ff, LAPIC + 0xf0		/* SVR: software enable, spurious vector 0xff */
	movl $0x10 + 2 * 17, IOAPIC		/* IOREGSEL: redirection entry 17, low dword */
	movl $VECTOR | (1 << 15) | (1 << 13), IOAPIC + 0x10
	movl $0x10 + 2 * 17 + 1, IOAPIC
	movl $0, IOAPIC + 0x10			/* destination APIC 0 */
	movl $irq_handler, %eax
	movl $IDT + 8 * VECTOR, %edi
	movw %ax, (%edi)
	movw %cs, %bx
	movw %bx, 2(%edi)
	movw $0x8e00, 4(%edi)			/* present, DPL 0, 32-bit interrupt gate */
	shrl $16, %eax
	movw %ax, 6(%edi)
	lidt idtr
	popa
	ret

/* The INTx handler, as Linux's vp_interrupt: read (and so clear) ISR, then EOI. */
irq_handler:
	pushl %eax
	pushl %edi
	movl common, %edi
	movzbl 0x1000(%edi), %eax
	orl %eax, isr_seen
	incl irq_count
	testl %eax, %eax
	jnz 1f
	incl irq_empty			/* delivered with ISR already clear: not ours */
1:
	movl $0, LAPIC + 0xb0
	popl %edi
	/* Return without iret, which this host's kvm_pvm fails to emulate here: drop the frame,
	 * then sti (its one-instruction shadow covers the jump) and jump back. */
	movl 4(%esp), %eax
	movl %eax, ret_eip
	popl %eax
	addl $12, %esp
	sti
	jmp *ret_eip

/* Wait (interrupts on) until irq_count reaches EBX; on timeout exit with 0xdeaf0000 | EBX. */
wait_irqs:
	pushl %ecx
	movl $0x04000000, %ecx
1:	cmpl %ebx, irq_count
	jae 2f
	pause
	decl %ecx
	jnz 1b
	PRINT "irq timeout\n"
	movl %ebx, %eax
	orl $0xdeaf0000, %eax
	outl %eax, $DEBUG_EXIT
2:	popl %ecx
	ret

main:
	cld
	/* Find the virtio-console (1af4:1043). */
	xorl %ebx, %ebx
1:	xorl %ecx, %ecx
	call cfg_read
	cmpl $0x10431af4, %eax
	je 2f
	incl %ebx
	cmpl $32, %ebx
	jb 1b
	PRINT "no virtio\n"
	DEBUG_EXIT_WITH $0xdead0000
2:	movl %ebx, %eax
	REPORT "slot="
	/* Memory decoding and bus mastering on. */
	movl $4, %ecx
	call cfg_read
	orl $6, %eax
	call cfg_write
	movl $0x10, %ecx
	call cfg_read
	andl $0xfffffff0, %eax
	movl %eax, bar0
	/* Walk the capabilities: cfg_type 1 common, 2 notify (+ multiplier at +16). */
	movl $0x34, %ecx
	call cfg_read
	andl $0xff, %eax
3:	testl %eax, %eax
	jz 6f
	movl %eax, %esi
	movl %esi, %ecx
	call cfg_read
	cmpb $0x09, %al
	jne 5f
	shrl $24, %eax			/* cfg_type */
	movl %eax, %edx
	leal 8(%esi), %ecx
	call cfg_read			/* offset */
	addl bar0, %eax
	cmpl $1, %edx
	jne 4f
	movl %eax, common
4:	cmpl $2, %edx
	jne 5f
	movl %eax, notify
	leal 16(%esi), %ecx
	call cfg_read
	movl %eax, mult
5:	movl %esi, %ecx
	call cfg_read
	shrl $8, %eax
	andl $0xff, %eax
	jmp 3b
6:	movl common, %edi
	/* Reset, ACKNOWLEDGE, DRIVER, features VERSION_1 (bit 32) + MULTIPORT (bit 1), FEATURES_OK. */
	movb $0, 0x14(%edi)
	movb $1, 0x14(%edi)
	movb $3, 0x14(%edi)
	movl $1, 0x08(%edi)
	movl $1, 0x0c(%edi)
	movl $0, 0x08(%edi)
	movl $2, 0x0c(%edi)
	movb $0xb, 0x14(%edi)
	movzbl 0x14(%edi), %eax
	REPORT "status="
	movl $2, %eax
	call setup_queue
	movl $3, %eax
	call setup_queue
	movl $4, %eax
	call setup_queue
	movl $5, %eax
	call setup_queue
	movb $0xf, 0x14(%edi)
	/* Three control receive buffers (64 bytes each, device-writable). */
	movl $2, %eax
	movl $64, %edx
	movl $2, %esi
	movl $BUF, %ecx
	call post
	movl $BUF + 0x100, %ecx
	call post
	movl $BUF + 0x200, %ecx
	call post
	/* Port 1 receive buffer. */
	movl $4, %eax
	movl $BUF + 0x3000, %ecx
	call post
	/* DEVICE_READY → DEVICE_ADD(1). */
	movl $0xffffffff, %eax
	xorl %ecx, %ecx
	xorl %edx, %edx
	call send_ctl
	movl $2, %eax
	movl $1, %ebx
	call wait_used
	movl $BUF, %edi
	call show_ctl
	/* PORT_READY(1) → PORT_NAME(1) + name, PORT_OPEN(1, 1). */
	movl $1, %eax
	movl $3, %ecx
	movl $1, %edx
	call send_ctl
	movl $2, %eax
	movl $3, %ebx
	call wait_used
	movl $BUF + 0x100, %edi
	call show_ctl
	PRINT "name="
	leal 8(%edi), %esi
	movl $QBASE + 0x2000 + 0x400, %ebx	/* used ring of queue 2: element 1's length */
	movl 16(%ebx), %ecx
	movb $0, (%edi,%ecx)
	call puts
	call newline
	movl $BUF + 0x200, %edi
	call show_ctl
	/* Open port 1 (PORT_OPEN 1 from the guest), then write on its transmit queue. */
	movl $1, %eax
	movl $6, %ecx
	movl $2, %edx
	call send_ctl
	movl $5, %eax
	movl $hello, %ecx
	movl $hello_end - hello, %edx
	xorl %esi, %esi
	call post
	movl $5, %eax
	movl $1, %ebx
	call wait_used
	/* What the host answers lands in the receive buffer. */
	movl $4, %eax
	movl $1, %ebx
	call wait_used
	movl $QBASE + 0x4000 + 0x400, %ebx
	movl 8(%ebx), %ecx		/* used[0].len */
	movl $BUF + 0x3000, %esi
	movb $0, (%esi,%ecx)
	PRINT "rx="
	call puts
	call newline
	/* INTx delivered for real: IOAPIC pin 17 (slot 1, INTA#) level/active-low → vector 0x30. */
	call intx_setup
	sti
	movl $1, %ebx
	call wait_irqs
	movl irq_count, %eax
	REPORT "irqs="
	movl isr_seen, %eax
	REPORT "isrseen="
	/* A fresh queue interrupt: one more buffer on port 1's transmit queue. The count to wait
	 * for is taken before the kick: the interrupt may arrive before the next instruction (the
	 * kick exits and the device answers before the vCPU re-enters). */
	movl irq_count, %ebx
	incl %ebx
	movl $5, %eax
	movl $bang, %ecx
	movl $1, %edx
	xorl %esi, %esi
	call post
	call wait_irqs
	cli
	movl irq_count, %eax
	REPORT "irqs2="
	movl irq_empty, %eax
	REPORT "irqempty="
	/* A descriptor chain that loops (0 → 1 → 0) on port 1's transmit queue. */
	movl $QBASE + 0x5000, %edi
	movl $BUF, 0x00(%edi)
	movl $0, 0x04(%edi)
	movl $4, 0x08(%edi)
	movw $1, 0x0c(%edi)
	movw $1, 0x0e(%edi)
	movl $BUF, 0x10(%edi)
	movl $0, 0x14(%edi)
	movl $4, 0x18(%edi)
	movw $1, 0x1c(%edi)
	movw $0, 0x1e(%edi)
	movzwl 0x202(%edi), %ebx
	andl $7, %ebx
	movw $0, 0x204(%edi,%ebx,2)
	incw 0x202(%edi)
	movl notify, %eax
	movl mult, %ecx
	imull $5, %ecx
	movw $5, (%eax,%ecx)
	movl common, %edi
	movl $0x04000000, %ecx
7:	testb $0x40, 0x14(%edi)
	jnz 8f
	pause
	decl %ecx
	jnz 7b
8:	movzbl 0x14(%edi), %eax
	REPORT "broken="
	/* MSI-X stayed off: the interrupts went to INTx; reading ISR returns and clears them. */
	movl common, %edi
	addl $0x1000, %edi		/* ISR at BAR 0 + 0x1000 (common is at BAR 0 + 0) */
	movzbl (%edi), %eax
	REPORT "isr="
	movzbl (%edi), %eax
	REPORT "isr2="
	PRINT "virtio done\n"
	DEBUG_EXIT_WITH $1
9:	hlt
	jmp 9b

hello:	.ascii "hello from the guest\n"
hello_end:
bang:	.ascii "!"
	.balign 4
idtr:	.word 8 * VECTOR + 7
	.long IDT
irq_count:	.long 0
irq_empty:	.long 0
ret_eip:	.long 0
isr_seen:	.long 0
bar0:	.long 0
common:	.long 0
notify:	.long 0
mult:	.long 0
