// Identity page tables for the 64-bit entry: PML4 -> one PDPT -> four page directories of
// 2 MiB pages, mapping guest-physical 0..4 GiB 1:1. Linux's startup_64 and our flat long-mode
// guests only need the low 4 GiB mapped until they build their own tables.
import type { GuestMemory } from '../kvm/memory.js';
import { PD_START, PDPT_START, PML4_START } from '../platform/layout.js';
import { zeroGuest } from './image.js';

const PAGE = 0x1000;
const PTE_PRESENT = 1n << 0n;
const PTE_WRITE = 1n << 1n;
/** PS: the PD entry maps a 2 MiB page instead of pointing at a page table. */
const PTE_PAGE_SIZE = 1n << 7n;
const PD_COUNT = 4;
const ENTRIES = 512;
const TWO_MIB = 0x20_0000n;

/** The CR3 value for the tables written by writeIdentityPageTables. */
export const IDENTITY_CR3 = PML4_START;

/** Write the tables; returns the CR3 value. */
export function writeIdentityPageTables(memory: GuestMemory): number {
  zeroGuest(memory, PML4_START, PAGE);
  zeroGuest(memory, PDPT_START, PAGE);
  memory.writeU64(PML4_START, BigInt(PDPT_START) | PTE_PRESENT | PTE_WRITE);
  for (let d = 0; d < PD_COUNT; d++) {
    const pd = PD_START + d * PAGE;
    memory.writeU64(PDPT_START + d * 8, BigInt(pd) | PTE_PRESENT | PTE_WRITE);
    // One view per table: 512 writes through GuestMemory's lookup would be needlessly slow.
    const view = memory.view(pd, PAGE);
    const dv = new DataView(view.buffer, view.byteOffset, PAGE);
    for (let i = 0; i < ENTRIES; i++) {
      const phys = (BigInt(d * ENTRIES + i)) * TWO_MIB;
      dv.setBigUint64(i * 8, phys | PTE_PRESENT | PTE_WRITE | PTE_PAGE_SIZE, true);
    }
  }
  return IDENTITY_CR3;
}

/** Walk the identity tables like the MMU would (for tests and diagnostics): virtual -> physical. */
export function translate(memory: GuestMemory, cr3: number, vaddr: bigint): bigint | undefined {
  const pml4e = memory.readU64(cr3 + Number((vaddr >> 39n) & 511n) * 8);
  if ((pml4e & PTE_PRESENT) === 0n) return undefined;
  const pdpte = memory.readU64(Number(pml4e & 0x000f_ffff_ffff_f000n) + Number((vaddr >> 30n) & 511n) * 8);
  if ((pdpte & PTE_PRESENT) === 0n) return undefined;
  const pde = memory.readU64(Number(pdpte & 0x000f_ffff_ffff_f000n) + Number((vaddr >> 21n) & 511n) * 8);
  if ((pde & PTE_PRESENT) === 0n || (pde & PTE_PAGE_SIZE) === 0n) return undefined;
  return (pde & 0x000f_ffff_ffe0_0000n) | (vaddr & 0x1f_ffffn);
}
