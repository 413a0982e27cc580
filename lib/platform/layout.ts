// Every fixed guest-physical address and I/O port of the node-kvm PC, in one place
// (Firecracker's arch/x86_64/layout.rs is the model). Nothing else in lib/ hard-codes one.
//
// Low memory map (below 1 MiB):
//   0x00000-0x003ff  real-mode IVT (left zero; page 0 holds no boot data on purpose)
//   0x00500          GDT used for protected/long-mode entry
//   0x00520          IDT (empty, limit 0: any exception during early boot triple-faults loudly)
//   0x06000          multiboot info / PVH hvm_start_info (+ their mmap and module lists)
//   0x07000          Linux zero page (struct boot_params)
//   0x08000          stack top for flat and multiboot guests (grows down)
//   0x09000-0x0efff  identity-mapping page tables: PML4, PDPT, 4 x PD (first 4 GiB, 2 MiB pages)
//   0x20000          kernel command line (up to CMDLINE_MAX bytes)
//   0x9fc00          MP floating pointer + MP config table (EBDA, where Linux scans)
//   0xe0000          ACPI RSDP and tables (Linux scans 0xe0000-0xfffff for the RSDP)
//   0x100000         HIMEM_START: protected-mode kernels load here (or at their pref_address)

/** Linux zero page (struct boot_params). */
export const ZERO_PAGE_START = 0x7000;
/** GDT used for protected- and long-mode entry. */
export const GDT_START = 0x500;
/** IDT (empty, limit 0: an exception during early boot triple-faults loudly). */
export const IDT_START = 0x520;
/** Multiboot info or PVH hvm_start_info, with their memory map and module lists. */
export const BOOT_INFO_START = 0x6000;
/** End of the boot-info area (exclusive). */
export const BOOT_INFO_END = 0x7000;
/** Stack top for flat and Multiboot guests (grows down). */
export const BOOT_STACK_TOP = 0x8000;
/** Identity-mapping page tables: the PML4. */
export const PML4_START = 0x9000;
/** Identity-mapping page tables: the PDPT. */
export const PDPT_START = 0xa000;
/** Identity-mapping page tables: 4 page directories (0xb000-0xefff), the first 4 GiB in 2 MiB pages. */
export const PD_START = 0xb000;
/** Kernel command line. */
export const CMDLINE_START = 0x20000;
/** Bytes reserved for the command line. */
export const CMDLINE_MAX = 0x10000;
/** MP floating pointer and MP config table (in the EBDA, where Linux scans). */
export const MPTABLE_START = 0x9fc00;
/** Extended BIOS data area: reserved in e820 from here to 1 MiB. */
export const EBDA_START = 0x9fc00;
/** ACPI RSDP and tables (Linux scans 0xe0000-0xfffff for the RSDP). */
export const ACPI_START = 0xe0000;
/** End of the ACPI area (exclusive). */
export const ACPI_END = 0x100000;
/** Where a PC's BIOS ROM would sit (reserved). */
export const BIOS_ROM_START = 0xf0000;
/** Protected-mode kernels load here (or at their pref_address). */
export const HIMEM_START = 0x100000;
/**
 * Default load address of flat binaries (tests, tiny guests): above the boot structures
 * (GDT..page tables end at 0xefff) and a multiple of 16 so real-mode CS:IP = 0x1000:0.
 */
export const FLAT_LOAD_START = 0x10000;
/** Top of conventional memory reported in e820 (EBDA and the BIOS area above are reserved). */
export const LOW_RAM_END = EBDA_START;

/** The 32-bit PCI hole: RAM stops here and resumes at 4 GiB. */
export const MMIO_HOLE_START = 0xc000_0000;
/** 4 GiB: where RAM above the hole starts. */
export const FOUR_GIB = 0x1_0000_0000;
/** Window handed out to 32-bit PCI memory BARs. */
export const PCI_MMIO_START = 0xc000_0000;
/** End of the 32-bit PCI memory window (exclusive). */
export const PCI_MMIO_END = 0xfe00_0000;
/** Window handed out to PCI I/O BARs. */
export const PCI_IO_START = 0xc000;
/** End of the PCI I/O window (exclusive). */
export const PCI_IO_END = 0x10000;
/** IOAPIC registers (in-kernel irqchip). */
export const IOAPIC_START = 0xfec0_0000;
/** Local APIC registers (in-kernel irqchip). */
export const LAPIC_START = 0xfee0_0000;
/** KVM_SET_IDENTITY_MAP_ADDR: one page inside the hole (VMX's identity map for unpaged protected mode). */
export const IDENTITY_MAP_ADDR = 0xfffb_c000;
/** KVM_SET_TSS_ADDR: three pages inside the hole. */
export const TSS_ADDR = 0xfffb_d000;

/** The least guest RAM accepted (16 MiB). */
export const MIN_MEMORY = 16 * 1024 * 1024;
/** Node caps one external ArrayBuffer at 4 GiB: RAM above 4 GiB is split into chunks this size. */
export const MAX_REGION_SIZE = 2 * 1024 * 1024 * 1024;

// I/O ports.
/** i8254 PIT, channels 0-2 and the mode register (in-kernel PIT). */
export const PORT_PIT = 0x40;
/** i8042 keyboard controller: data port. */
export const PORT_I8042_DATA = 0x60;
/** System control port B (PIT gate and speaker), part of the i8042 window. */
export const PORT_SYSTEM_CONTROL_B = 0x61;
/** i8042 keyboard controller: command/status port. */
export const PORT_I8042_CMD = 0x64;
/** CMOS/RTC index port (bit 7 masks NMI). */
export const PORT_CMOS_INDEX = 0x70;
/** CMOS/RTC data port. */
export const PORT_CMOS_DATA = 0x71;
/** POST code port (accepted and ignored). */
export const PORT_POST = 0x80;
/** isa-debug-exit: a write ends the machine with (value << 1) | 1. */
export const PORT_DEBUG_EXIT = 0xf4;
/** 16550A UARTs COM1-COM4. */
export const PORT_COM = [0x3f8, 0x2f8, 0x3e8, 0x2e8] as const;
/** IRQs of COM1-COM4. */
export const IRQ_COM = [4, 3, 4, 3] as const;
/** fw_cfg selector (16-bit); data at +1. */
export const PORT_FW_CFG = 0x510;
/** fw_cfg data port. */
export const PORT_FW_CFG_DATA = 0x511;
/** PCI configuration mechanism #1: CONFIG_ADDRESS. */
export const PORT_PCI_CONFIG_ADDRESS = 0xcf8;
/** PCI configuration mechanism #1: CONFIG_DATA. */
export const PORT_PCI_CONFIG_DATA = 0xcfc;
/** ACPI PM register block (PM1a_EVT_BLK 4 bytes, PM1a_CNT_BLK 2 bytes, PM_TMR_BLK 4 bytes, GPE0 4 bytes). */
export const PORT_ACPI_PM1A_EVT = 0x600;
/** ACPI PM1a control block (SLP_TYP/SLP_EN). */
export const PORT_ACPI_PM1A_CNT = 0x604;
/** ACPI PM timer (3.579545 MHz, 24 bits). */
export const PORT_ACPI_PM_TMR = 0x608;
/** ACPI GPE0 block. */
export const PORT_ACPI_GPE0 = 0x620;
/** Bytes of the GPE0 block. */
export const PORT_ACPI_GPE0_LEN = 4;
/** ACPI reset register (FADT RESET_REG, system I/O): writing RESET_VALUE reboots. */
export const PORT_ACPI_RESET = 0xcf9;
/** The value the FADT tells the OS to write to the reset register. */
export const ACPI_RESET_VALUE = 0x06;

// Interrupts (GSIs on the in-kernel IOAPIC; 0-15 also reach the in-kernel PIC).
/** ACPI system control interrupt. */
export const IRQ_SCI = 9;
/** i8042 keyboard interrupt. */
export const IRQ_I8042_KBD = 1;
/** RTC interrupt. */
export const IRQ_RTC = 8;
/**
 * PCI INTx routing: device on slot `s` pin `p` (1=INTA#) uses PCI_INTX_GSI[(s + p - 1) % 4].
 * GSIs 16-23 are IOAPIC-only, level-triggered, active-low as PCI INTx must be, so they never
 * collide with an ISA edge-triggered line.
 */
export const PCI_INTX_GSI = [16, 17, 18, 19] as const;
/** IOAPIC input pins (GSIs 0-23). */
export const IOAPIC_PINS = 24;

/** The GSI of PCI slot `slot`, interrupt pin `pin` (1 = INTA#). */
export function pciIntxGsi(slot: number, pin: number): number {
  return PCI_INTX_GSI[(slot + pin - 1) % 4]!;
}
