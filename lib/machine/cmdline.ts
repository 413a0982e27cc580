// The kernel command line node-kvm gives Linux guests unless told otherwise.
//  console=ttyS0  our only console is COM1
//  reboot=k       reboot through the i8042 reset line, which we report as 'reboot'
//  panic=-1       a panic reboots at once, so a dead guest ends the machine instead of hanging
//  i8042.noaux    we model no PS/2 mouse; skip its probe
//  tsc=reliable   no other clocksource to cross-check against; saves the watchdog's work
//  iommu=noaperture  our PC has no AGP GART; on a K8-family CPU (what QEMU's `-cpu max`
//                 shows inside the nested lab) Linux otherwise probes all 256 PCI buses
//                 looking for one: 16k config-space exits, half the boot time in the lab
//  pci=noearly    the second such probe (early_gart_iommu_check, before PCI is up) ignores
//                 iommu=noaperture: 8,300 more config reads over 256 buses. It also skips
//                 the early chipset quirks, none of which match our i440FX and RTL8139
export const DEFAULT_CMDLINE = 'console=ttyS0 reboot=k panic=-1 i8042.noaux tsc=reliable iommu=noaperture pci=noearly';
