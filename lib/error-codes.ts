// Every `code` the package puts on an error it throws, with what it means. NodeKvmError's
// constructor takes only these, so a new code must be added here to compile, and a unit test
// (test/unit/error-codes.test.ts) checks that every 'ERR_*' literal in lib/ and native/ is here.

/**
 * Every `ERR_*` code node-kvm throws, and what it means. A {@link KvmError} carries an errno
 * name ({@link ErrnoCode}) instead, since it reports a failed system call.
 */
export type ErrorCode =
  // Caller arguments (InvalidArgumentError unless noted)
  /** An argument or option is missing, of the wrong type or out of range. */
  | 'ERR_INVALID_ARG'
  /** `memory` is not a positive size (a number of bytes or a string like 256M). */
  | 'ERR_INVALID_MEMORY'
  /** Guest RAM is below the 16M minimum or more than this host has. */
  | 'ERR_MEMORY_TOO_LARGE'
  /** `cpus` is not an integer between 1 and the host's limit. */
  | 'ERR_INVALID_CPUS'
  /** More vCPUs than the ACPI/MP tables can describe. */
  | 'ERR_TOO_MANY_CPUS'
  /** A net entry lacks a usable backend or has a bad revision. */
  | 'ERR_INVALID_NET'
  /** A MAC address is not six bytes written as aa:bb:cc:dd:ee:ff. */
  | 'ERR_INVALID_MAC'
  /** `devices` names a device the machine does not offer. */
  | 'ERR_UNKNOWN_DEVICE'
  /** Machine.create was given no kernel. */
  | 'ERR_NO_KERNEL'
  /** A kernel or initrd path is not a readable regular file. */
  | 'ERR_FILE'
  /** Bad command-line usage (the CLI exits 64). */
  | 'ERR_USAGE'
  /** This host's KVM cannot boot a Linux kernel directly (no VMX/SVM): use the nested lab. */
  | 'ERR_KVM_CANNOT_BOOT_LINUX'
  // Guest images (ImageError)
  /** Apt does not know the kernel package. */
  | 'ERR_IMAGE_PACKAGE_MISSING'
  /** Apt-get download failed (often: no network). */
  | 'ERR_IMAGE_APT_FAILED'
  /** Dpkg-deb, xz, zstd or busybox is not installed. */
  | 'ERR_IMAGE_TOOL_MISSING'
  /** The kernel file lacks the x86 boot header. */
  | 'ERR_IMAGE_NOT_BZIMAGE'
  /** The bzImage payload did not decompress to an ELF. */
  | 'ERR_IMAGE_BAD_PAYLOAD'
  /** A kernel module (or one it depends on) is absent. */
  | 'ERR_IMAGE_MODULE_MISSING'
  /** Modules were built for another kernel version. */
  | 'ERR_IMAGE_MODULE_MISMATCH'
  /** A file to add to the image is unusable. */
  | 'ERR_IMAGE_ADD'
  /** The disk filled up while writing the image cache. */
  | 'ERR_IMAGE_NO_SPACE'
  /** No cached image has that name. */
  | 'ERR_IMAGE_NOT_FOUND'
  /** Cached image files do not match their manifest. */
  | 'ERR_IMAGE_CORRUPT'
  /** An image name is not a plain file name. */
  | 'ERR_IMAGE_NAME'
  // Kernel images and boot set-up
  /** The kernel is not a bzImage, vmlinux (PVH), Multiboot ELF or usable flat binary. */
  | 'ERR_KERNEL_FORMAT'
  /** The kernel is not for x86-64 (or lacks a 64-bit entry). */
  | 'ERR_KERNEL_ARCH'
  /** The bzImage has no HdrS header or a boot protocol older than 2.06. */
  | 'ERR_KERNEL_TOO_OLD'
  /** The kernel file ends before its headers say it does. */
  | 'ERR_KERNEL_TRUNCATED'
  /** The kernel does not fit in guest RAM. */
  | 'ERR_KERNEL_TOO_LARGE'
  /** The kernel wants to load outside guest RAM or over reserved memory. */
  | 'ERR_KERNEL_ADDRESS'
  /** The Multiboot header asks for a feature the loader does not provide. */
  | 'ERR_MULTIBOOT_FLAGS'
  /** The initrd does not fit below the kernel's limit. */
  | 'ERR_INITRD_TOO_LARGE'
  /** The initrd is empty. */
  | 'ERR_INITRD_INVALID'
  /** The command line exceeds the kernel's limit. */
  | 'ERR_CMDLINE_TOO_LONG'
  /** The command line holds a NUL byte. */
  | 'ERR_CMDLINE_INVALID'
  /** Boot information (modules, memory map) does not fit its page. */
  | 'ERR_BOOT_INFO_TOO_LARGE'
  /** Guest RAM does not leave room for the boot structures. */
  | 'ERR_RAM_LAYOUT'
  /** The ACPI tables do not fit their reserved window (AcpiTablesTooLargeError). */
  | 'ERR_ACPI_TOO_LARGE'
  /** An AML object could not be encoded (an internal DSDT bug). */
  | 'ERR_AML_INVALID'
  /** A PCI slot number is outside 0-31. */
  | 'ERR_INVALID_PCI_SLOT'
  /** A PCI interrupt line is not routable. */
  | 'ERR_INVALID_PCI_IRQ'
  // Devices and buses
  /** A bus registration overlaps another (the message names both). */
  | 'ERR_BUS_OVERLAP'
  /** A bus window is empty or outside the bus's address space. */
  | 'ERR_BUS_RANGE'
  /** The device is not registered on this bus. */
  | 'ERR_BUS_NOT_REGISTERED'
  /** The device has several windows on this bus; move() cannot tell which. */
  | 'ERR_BUS_AMBIGUOUS'
  /** No free PCI slot is left. */
  | 'ERR_PCI_FULL'
  /** The PCI slot asked for is in use. */
  | 'ERR_PCI_SLOT_TAKEN'
  /** The PCI I/O or MMIO window is exhausted. */
  | 'ERR_PCI_RESOURCES'
  /** An fw_cfg file name is empty, too long or not ASCII. */
  | 'ERR_FW_CFG_NAME'
  /** An fw_cfg selector is out of range or reserved. */
  | 'ERR_FW_CFG_KEY'
  /** An fw_cfg file name is already used. */
  | 'ERR_FW_CFG_DUPLICATE'
  /** The fw_cfg file directory is full. */
  | 'ERR_FW_CFG_FULL'
  /** An fw_cfg item is too large. */
  | 'ERR_FW_CFG_SIZE'
  // The KVM layer
  /** The native addon is not built (run npm run build:native). */
  | 'ERR_NATIVE_MISSING'
  /** A handle was used after close() (ClosedError). */
  | 'ERR_KVM_CLOSED'
  /** A guest-physical access falls outside guest RAM (GuestMemoryError). */
  | 'ERR_GUEST_ADDRESS'
  /** A memory region overlaps another. */
  | 'ERR_REGION_OVERLAP'
  /** A memory region exceeds the largest one slot may map. */
  | 'ERR_REGION_TOO_LARGE'
  /** No memory region uses that slot. */
  | 'ERR_NO_SUCH_SLOT'
  /** A vCPU already runs a run loop. */
  | 'ERR_RUN_LOOP_ACTIVE'
  /** The vCPU runs on a native thread; run() from JavaScript is refused. */
  | 'ERR_VCPU_THREADED'
  // Machines and snapshots
  /** The call does not fit the machine's state (for instance start() twice). */
  | 'ERR_MACHINE_STATE'
  /** The machine ended while the call waited. */
  | 'ERR_MACHINE_ENDED'
  /** The machine is closed. */
  | 'ERR_MACHINE_CLOSED'
  /** Console.waitFor() saw no match in time (ConsoleTimeoutError, with the tail). */
  | 'ERR_CONSOLE_TIMEOUT'
  /** A snapshot file is damaged (SnapshotFileError). */
  | 'ERR_SNAPSHOT_CORRUPT'
  /** A snapshot file has another format version (SnapshotFileError). */
  | 'ERR_SNAPSHOT_VERSION'
  /** A snapshot does not fit this machine (memory, vCPUs, devices). */
  | 'ERR_SNAPSHOT_MISMATCH'
  /** A vCPU did not settle before the capture. */
  | 'ERR_SNAPSHOT_STATE'
  /** The snapshot was used after close(). */
  | 'ERR_SNAPSHOT_CLOSED'
  /** Requests of a share (virtio-9p) were still under way on the host when the snapshot's wait for them ran out. */
  | 'ERR_SNAPSHOT_BUSY'
  // Network backends
  /** /dev/net/tun is missing. */
  | 'ERR_TAP_UNAVAILABLE'
  /** Opening a TAP needs CAP_NET_ADMIN (root) or a persistent TAP you own. */
  | 'ERR_TAP_PERMISSION'
  /** The TAP is in use by another process. */
  | 'ERR_TAP_BUSY'
  /** Network namespaces cannot be created here (not root, or no ip). */
  | 'ERR_NETNS_UNAVAILABLE'
  /** A command in a network namespace failed. */
  | 'ERR_NETNS_COMMAND'
  /** User networking needs passt, which is not installed (apt-get install passt). */
  | 'ERR_NET_USER_UNAVAILABLE'
  /** passt could not start (its own message follows, e.g. no interface with a default route). */
  | 'ERR_NET_USER_START'
  /** passt ended after it was ready; the guest's link went down ('net-error' on the Machine). */
  | 'ERR_NET_USER_EXITED'
  /** passt sent a stream that is not length-prefixed frames. */
  | 'ERR_NET_USER_PROTOCOL'
  /** A forwarded host port is in use by someone else. */
  | 'ERR_NET_PORT_IN_USE'
  /** The network backend was used, or closed, while closed or starting. */
  | 'ERR_NET_CLOSED'
  // virtio devices: console ports and 9p shares
  /** A `ports` entry has no name, a name too long or with a slash or control character, or too many ports. */
  | 'ERR_INVALID_PORT'
  /** Two ports have the same name. */
  | 'ERR_DUPLICATE_PORT'
  /** machine.port() was given a name the machine has no port for. */
  | 'ERR_NO_SUCH_PORT'
  /** The host end of a port is already open. */
  | 'ERR_PORT_BUSY'
  /** The guest closed its end of the port. */
  | 'ERR_PORT_CLOSED'
  /** A port's host stream was destroyed with writes still waiting. */
  | 'ERR_STREAM_DESTROYED'
  /** A `shares` entry is malformed: a bad or duplicated tag, a missing path, a non-boolean readonly. */
  | 'ERR_INVALID_SHARE'
  /** A share's host path is missing, not a directory or not readable by this user. */
  | 'ERR_SHARE_PATH'
  // Testing helpers (node-kvm/testing)
  /** The test VM did not reach a shell (BootError, with the console tail). */
  | 'ERR_VM_BOOT'
  /** The test VM ended while a call waited on it. */
  | 'ERR_VM_ENDED'
  /** The test VM stopped answering earlier and was stopped. */
  | 'ERR_VM_UNUSABLE'
  /** Exec() did not finish in time (ExecTimeoutError). */
  | 'ERR_EXEC_TIMEOUT'
  /** ExecOk() saw a non-zero exit status (ExecFailedError). */
  | 'ERR_EXEC_FAILED'
  /** The reply on the console was damaged (ExecProtocolError). */
  | 'ERR_EXEC_PROTOCOL'
  /** The guest agent did not say HELLO in time, or a request to it did not finish in time. */
  | 'ERR_AGENT_TIMEOUT'
  /** A request was sent before the guest agent said HELLO. */
  | 'ERR_AGENT_NOT_READY'
  /** The guest agent died or its port closed while a request was under way. */
  | 'ERR_AGENT_DIED'
  /** The guest agent's port is gone for good (the machine ended or the port was closed). */
  | 'ERR_AGENT_GONE'
  /** The guest agent stopped answering while the guest still runs; the VM falls back to the console. */
  | 'ERR_AGENT_UNRESPONSIVE'
  /** The guest agent sent a frame that breaks the protocol. */
  | 'ERR_AGENT_PROTOCOL'
  /** The guest agent refused a request (the message carries the guest's errno). */
  | 'ERR_AGENT_REQUEST'
  /** An exec request (command, environment) is larger than the agent accepts. */
  | 'ERR_EXEC_TOO_LARGE'
  /** A command wrote more output than `maxOutput`; it was killed. */
  | 'ERR_EXEC_OUTPUT_LIMIT'
  /** Reading the stream given as a command's stdin failed. */
  | 'ERR_EXEC_STDIN'
  /** The guest ended before the command reported its exit status. */
  | 'ERR_EXEC_NO_STATUS'
  /** readFile found a file larger than `maxBytes`. */
  | 'ERR_FILE_TOO_LARGE'
  /** A template's setup() threw; the message carries its error and the console tail (TemplateSetupError). */
  | 'ERR_TEMPLATE_SETUP'
  /** fork() or save() on a template that was closed. */
  | 'ERR_TEMPLATE_CLOSED'
  /** A template file is not a template, or was made from another kernel, image or machine shape. */
  | 'ERR_TEMPLATE_MISMATCH'
  /** A fork's worst case (all its guest RAM dirty) does not fit in the host's available memory. */
  | 'ERR_FORK_MEMORY'
  /** A fork was restored but its guest did not take its clock, MAC or address (console tail attached). */
  | 'ERR_FORK_FAILED'
  /** `node-kvm attach`: no VM is listening on that socket (it ended, or the path is wrong). */
  | 'ERR_ATTACH'
  // The nested lab (node-kvm/lab)
  /** The lab was given no command, or one it cannot run. */
  | 'ERR_LAB_COMMAND'
  /** An --env entry is not NAME or NAME=VALUE. */
  | 'ERR_LAB_ENV'
  /** The lab's CPU count is out of range. */
  | 'ERR_LAB_CPUS'
  /** The lab's memory size is out of range. */
  | 'ERR_LAB_MEMORY'
  /** The lab's timeout is not a positive number. */
  | 'ERR_LAB_TIMEOUT'
  /** The temporary directory path contains whitespace. */
  | 'ERR_LAB_TMPDIR'
  /** QEMU could not be started. */
  | 'ERR_LAB_QEMU';

/** An errno name as the kernel reports it ('ENOENT', 'EEXIST', …): the `code` of a {@link KvmError}. */
export type ErrnoCode = `E${string}`;
