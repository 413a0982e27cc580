/*
 * Shared by every test guest (included by the *.S files; build.ts hashes it with them).
 *
 * Loading contract (test/guests/run.ts implements it):
 *   - the flat binary is loaded at LOAD_ADDR (0x8000) in guest RAM;
 *   - the vCPU enters in REAL MODE with CS=DS=ES=SS=0 (bases 0), IP=LOAD_ADDR,
 *     SP=LOAD_ADDR (the stack grows down below the image), RFLAGS=2;
 *   - guests that need 32- or 64-bit mode switch up themselves with the GDT below.
 * Everything is linked at LOAD_ADDR, so 16-bit code can address its own data with DS=0.
 *
 * Ports shared by the guests (each guest lists the ones it uses at its top). Ports that take
 * 2- or 4-byte accesses start a 4-byte window of their own, so a bus device can claim the
 * whole access width (an access that runs past a window's end is a miss):
 *   0xe0 IN    value/parameter from the test (1, 2, 4 bytes)
 *   0xe4 OUT   echo of what 0xe0 gave        0xe8 OUT  final report (dword)
 *   0xec OUT   control register dump (dword) 0xf0 OUT  timer tick number (dword)
 *   0xf8 OUT   checksum (word)               0xfa OUT  rep outsb target (byte)
 *   0xfb IN    rep insb source (byte)        0xfc OUT  AP APIC id (byte)
 *   0xfd OUT   exit-loop PIO target (byte)   0x3f8 OUT console bytes
 * (0xf4-0xf7 stay free: the PC model's debug-exit port.)
 */
#define LOAD_ADDR     0x8000
#define PORT_CONSOLE  0x3f8
#define PORT_PARAM    0xe0
#define PORT_ECHO     0xe4
#define PORT_OUTS     0xfa
#define PORT_INS      0xfb
#define PORT_CSUM     0xf8
#define PORT_REPORT   0xe8
#define PORT_CREG     0xec
#define PORT_TICK     0xf0
#define PORT_APIC_ID  0xfc
#define PORT_LOOP     0xfd

#define SEL_CODE32 0x08
#define SEL_DATA   0x10
#define SEL_CODE64 0x18

/*
 * A flat GDT: null, 32-bit code, data, 64-bit code; and its descriptor for lgdt. The accessed
 * bits are preset so loading a selector never writes the GDT (keeps dirty logs exact).
 */
.macro GDT_TABLE
	.balign 8
gdt:
	.quad 0
	.quad 0x00cf9b000000ffff	/* 0x08: code, 32-bit, base 0, 4 GiB */
	.quad 0x00cf93000000ffff	/* 0x10: data, base 0, 4 GiB */
	.quad 0x00af9b000000ffff	/* 0x18: code, 64-bit */
gdt_end:
	.balign 4
gdt_desc:
	.word gdt_end - gdt - 1
	.long gdt
.endm

/* From real mode (16-bit code, DS=0): load the GDT, set CR0.PE and far-jump to \target. */
.macro REAL_TO_PM32 target
	cli
	lgdtl gdt_desc
	movl %cr0, %eax
	orl $1, %eax
	movl %eax, %cr0
	ljmpl $SEL_CODE32, $\target
.endm

/* First thing in 32-bit code: flat data segments and the stack at LOAD_ADDR. */
.macro PM32_SEGMENTS
	movw $SEL_DATA, %ax
	movw %ax, %ds
	movw %ax, %es
	movw %ax, %ss
	movw %ax, %fs
	movw %ax, %gs
	movl $LOAD_ADDR, %esp
.endm
