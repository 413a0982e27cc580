// Every `code` the package puts on an error it throws, with what it means. The ErrorCode union
// is derived from this table, so a new code must be added here to compile, and a unit test
// (test/unit/error-codes.test.ts) checks that every 'ERR_*' literal in lib/ and native/ is here.

/**
 * Every `ERR_*` code node-kvm throws, and what it means. {@link KvmError} carries an errno name
 * ({@link ErrnoCode}) instead, since it reports a failed system call.
 */
export const ERROR_CODES = {
  // Caller arguments (InvalidArgumentError unless noted)
  ERR_INVALID_ARG: 'an argument or option is missing, of the wrong type or out of range',
  ERR_INVALID_MEMORY: 'a size is not a positive integer or a string like 256M',
  ERR_MEMORY_TOO_LARGE: 'guest RAM is below the 16M minimum or more than this host has',
  ERR_INVALID_CPUS: 'cpus is not an integer between 1 and the host\'s limit',
  ERR_TOO_MANY_CPUS: 'more vCPUs than the ACPI/MP tables can describe',
  ERR_INVALID_NET: 'a net entry lacks a usable backend or has a bad revision',
  ERR_INVALID_MAC: 'a MAC address is not six bytes written as aa:bb:cc:dd:ee:ff',
  ERR_UNKNOWN_DEVICE: 'devices names a device the machine does not offer',
  ERR_NO_KERNEL: 'Machine.create was given no kernel',
  ERR_FILE: 'a kernel or initrd path is not a readable regular file',
  ERR_USAGE: 'bad command-line usage (the CLI exits 64)',
  // Guest images (ImageError)
  ERR_IMAGE_PACKAGE_MISSING: 'apt does not know the kernel package',
  ERR_IMAGE_APT_FAILED: 'apt-get download failed (often: no network)',
  ERR_IMAGE_TOOL_MISSING: 'dpkg-deb, xz, zstd or busybox is not installed',
  ERR_IMAGE_NOT_BZIMAGE: 'the kernel file lacks the x86 boot header',
  ERR_IMAGE_BAD_PAYLOAD: 'the bzImage payload did not decompress to an ELF',
  ERR_IMAGE_MODULE_MISSING: 'a kernel module (or one it depends on) is absent',
  ERR_IMAGE_MODULE_MISMATCH: 'modules were built for another kernel version',
  ERR_IMAGE_ADD: 'a file to add to the image is unusable',
  ERR_IMAGE_NO_SPACE: 'the disk filled up while writing the image cache',
  ERR_IMAGE_NOT_FOUND: 'no cached image has that name',
  ERR_IMAGE_CORRUPT: 'cached image files do not match their manifest',
  ERR_IMAGE_NAME: 'an image name is not a plain file name',
  // Kernel images and boot set-up
  ERR_KERNEL_FORMAT: 'the kernel is not a bzImage, vmlinux (PVH), Multiboot ELF or usable flat binary',
  ERR_KERNEL_ARCH: 'the kernel is not for x86-64 (or lacks a 64-bit entry)',
  ERR_KERNEL_TOO_OLD: 'the bzImage has no HdrS header or a boot protocol older than 2.06',
  ERR_KERNEL_TRUNCATED: 'the kernel file ends before its headers say it does',
  ERR_KERNEL_TOO_LARGE: 'the kernel does not fit in guest RAM',
  ERR_KERNEL_ADDRESS: 'the kernel wants to load outside guest RAM or over reserved memory',
  ERR_MULTIBOOT_FLAGS: 'the Multiboot header asks for a feature the loader does not provide',
  ERR_INITRD_TOO_LARGE: 'the initrd does not fit below the kernel\'s limit',
  ERR_INITRD_INVALID: 'the initrd is empty',
  ERR_CMDLINE_TOO_LONG: 'the command line exceeds the kernel\'s limit',
  ERR_CMDLINE_INVALID: 'the command line holds a NUL byte',
  ERR_BOOT_INFO_TOO_LARGE: 'boot information (modules, memory map) does not fit its page',
  ERR_RAM_LAYOUT: 'guest RAM does not leave room for the boot structures',
  ERR_ACPI_TOO_LARGE: 'the ACPI tables do not fit their reserved window (AcpiTablesTooLargeError)',
  ERR_AML_INVALID: 'an AML object could not be encoded (an internal DSDT bug)',
  ERR_INVALID_PCI_SLOT: 'a PCI slot number is outside 0-31',
  ERR_INVALID_PCI_IRQ: 'a PCI interrupt line is not routable',
  // Devices and buses
  ERR_BUS_OVERLAP: 'a bus registration overlaps another (the message names both)',
  ERR_BUS_RANGE: 'a bus window is empty or outside the bus\'s address space',
  ERR_BUS_NOT_REGISTERED: 'the device is not registered on this bus',
  ERR_BUS_AMBIGUOUS: 'the device has several windows on this bus; move() cannot tell which',
  ERR_PCI_FULL: 'no free PCI slot is left',
  ERR_PCI_SLOT_TAKEN: 'the PCI slot asked for is in use',
  ERR_PCI_RESOURCES: 'the PCI I/O or MMIO window is exhausted',
  ERR_FW_CFG_NAME: 'an fw_cfg file name is empty, too long or not ASCII',
  ERR_FW_CFG_KEY: 'an fw_cfg selector is out of range or reserved',
  ERR_FW_CFG_DUPLICATE: 'an fw_cfg file name is already used',
  ERR_FW_CFG_FULL: 'the fw_cfg file directory is full',
  ERR_FW_CFG_SIZE: 'an fw_cfg item is too large',
  // The KVM layer
  ERR_NATIVE_MISSING: 'the native addon is not built (run npm run build:native)',
  ERR_KVM_CLOSED: 'a handle was used after close() (ClosedError)',
  ERR_GUEST_ADDRESS: 'a guest-physical access falls outside guest RAM (GuestMemoryError)',
  ERR_REGION_OVERLAP: 'a memory region overlaps another',
  ERR_REGION_TOO_LARGE: 'a memory region exceeds the largest one slot may map',
  ERR_NO_SUCH_SLOT: 'no memory region uses that slot',
  ERR_RUN_LOOP_ACTIVE: 'a vCPU already runs a run loop',
  ERR_VCPU_THREADED: 'the vCPU runs on a native thread; run() from JavaScript is refused',
  // Machines and snapshots
  ERR_MACHINE_STATE: 'the call does not fit the machine\'s state (for instance start() twice)',
  ERR_MACHINE_ENDED: 'the machine ended while the call waited',
  ERR_MACHINE_CLOSED: 'the machine is closed',
  ERR_CONSOLE_TIMEOUT: 'console.waitFor() saw no match in time (ConsoleTimeoutError, with the tail)',
  ERR_SNAPSHOT_CORRUPT: 'a snapshot file is damaged (SnapshotFileError)',
  ERR_SNAPSHOT_VERSION: 'a snapshot file has another format version (SnapshotFileError)',
  ERR_SNAPSHOT_MISMATCH: 'a snapshot does not fit this machine (memory, vCPUs, devices)',
  ERR_SNAPSHOT_STATE: 'a vCPU did not settle before the capture',
  ERR_SNAPSHOT_CLOSED: 'the snapshot was used after close()',
  // Network backends
  ERR_TAP_UNAVAILABLE: '/dev/net/tun is missing',
  ERR_TAP_PERMISSION: 'opening a TAP needs CAP_NET_ADMIN (root) or a persistent TAP you own',
  ERR_TAP_BUSY: 'the TAP is in use by another process',
  ERR_NETNS_UNAVAILABLE: 'network namespaces cannot be created here (not root, or no ip)',
  ERR_NETNS_COMMAND: 'a command in a network namespace failed',
  // Testing helpers (node-kvm/testing)
  ERR_VM_BOOT: 'the test VM did not reach a shell (BootError, with the console tail)',
  ERR_VM_ENDED: 'the test VM ended while a call waited on it',
  ERR_VM_UNUSABLE: 'the test VM stopped answering earlier and was stopped',
  ERR_EXEC_TIMEOUT: 'exec() did not finish in time (ExecTimeoutError)',
  ERR_EXEC_FAILED: 'execOk() saw a non-zero exit status (ExecFailedError)',
  ERR_EXEC_PROTOCOL: 'the reply on the console was damaged (ExecProtocolError)',
  // The nested lab (node-kvm/lab)
  ERR_LAB_COMMAND: 'the lab was given no command, or one it cannot run',
  ERR_LAB_ENV: 'an --env entry is not NAME or NAME=VALUE',
  ERR_LAB_CPUS: 'the lab\'s CPU count is out of range',
  ERR_LAB_MEMORY: 'the lab\'s memory size is out of range',
  ERR_LAB_TIMEOUT: 'the lab\'s timeout is not a positive number',
  ERR_LAB_TMPDIR: 'the temporary directory path contains whitespace',
  ERR_LAB_QEMU: 'QEMU could not be started',
} as const;

/** Every `ERR_*` code node-kvm throws; see {@link ERROR_CODES} for what each means. */
export type ErrorCode = keyof typeof ERROR_CODES;

/** An errno name as the kernel reports it ('ENOENT', 'EEXIST', …): the `code` of a {@link KvmError}. */
export type ErrnoCode = `E${string}`;
