// The RTL8139's built-in 10/100 PHY as the MII registers mapped at BasicModeCtrl..NWayExpansion.
// Both drivers read these as "PHY 32" (mii_2_8139_map); link state comes from the backend.
import {
  BMCR_ANENABLE, BMCR_ANRESTART, BMCR_FULLDPLX, BMCR_RESET, BMCR_SPEED100, BMSR_100FULL,
  BMSR_100HALF, BMSR_10FULL, BMSR_10HALF, BMSR_ANEGCAPABLE, BMSR_ANEGCOMPLETE, BMSR_ERCAP,
  BMSR_LSTATUS,
} from './regs.js';

const BMCR_DEFAULT = BMCR_SPEED100 | BMCR_ANENABLE | BMCR_FULLDPLX;
const BMSR_CAPS = BMSR_100FULL | BMSR_100HALF | BMSR_10FULL | BMSR_10HALF | BMSR_ANEGCAPABLE | BMSR_ERCAP;
/** ADVERTISE_CSMA | 10HALF | 10FULL | 100HALF | 100FULL. */
const ANAR_DEFAULT = 0x01e1;
/** What the partner (the virtual switch port) advertises: same abilities plus ACK. */
const ANLPAR_LINKED = 0x45e1;
/** ANER: link partner is auto-negotiation able. */
const ANER_LINKED = 0x0001;

/** Rtl8139Phy.saveState(). */
export interface PhyState {
  bmcr: number; anar: number; link: boolean; linkLatchedDown: boolean;
}

export class Rtl8139Phy {
  bmcr = BMCR_DEFAULT;
  anar = ANAR_DEFAULT;
  private link = true;
  /**
   * BMSR's link bit latches low (IEEE 802.3 22.2.4.2.13): after a link loss it reads 0 once even
   * if the link came back, so drivers that read BMSR twice (mii_link_ok) see the current state.
   */
  private linkLatchedDown = false;

  reset(): void {
    this.bmcr = BMCR_DEFAULT;
    this.anar = ANAR_DEFAULT;
    this.linkLatchedDown = !this.link;
  }

  get linkUp(): boolean {
    return this.link;
  }

  saveState(): PhyState {
    return { bmcr: this.bmcr, anar: this.anar, link: this.link, linkLatchedDown: this.linkLatchedDown };
  }

  loadState(s: PhyState): void {
    this.bmcr = s.bmcr; this.anar = s.anar; this.link = s.link; this.linkLatchedDown = s.linkLatchedDown;
  }

  /** Returns true when the state changed. */
  setLink(up: boolean): boolean {
    if (up === this.link) return false;
    this.link = up;
    if (!up) this.linkLatchedDown = true;
    return true;
  }

  readBmsr(): number {
    const up = this.link && !this.linkLatchedDown;
    this.linkLatchedDown = false;
    return BMSR_CAPS | (up ? BMSR_LSTATUS : 0) | (this.link && (this.bmcr & BMCR_ANENABLE) !== 0 ? BMSR_ANEGCOMPLETE : 0);
  }

  /** BMSR without the read side effect (for byte-wise reads of the high half, and inspection). */
  peekBmsr(): number {
    return BMSR_CAPS | (this.link && !this.linkLatchedDown ? BMSR_LSTATUS : 0) |
      (this.link && (this.bmcr & BMCR_ANENABLE) !== 0 ? BMSR_ANEGCOMPLETE : 0);
  }

  writeBmcr(value: number): void {
    if ((value & BMCR_RESET) !== 0) {
      this.reset();
      return;
    }
    // Reset and restart-negotiation complete at once: they read back as zero.
    this.bmcr = value & ~(BMCR_RESET | BMCR_ANRESTART) & 0xffff;
  }

  get anlpar(): number {
    return this.link ? ANLPAR_LINKED : 0;
  }

  get aner(): number {
    return this.link ? ANER_LINKED : 0;
  }

  /** 100 Mbit/s unless the driver forced 10 with autonegotiation off. */
  get speed100(): boolean {
    return (this.bmcr & BMCR_ANENABLE) !== 0 || (this.bmcr & BMCR_SPEED100) !== 0;
  }
}
