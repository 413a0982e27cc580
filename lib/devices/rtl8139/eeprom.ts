// The 93C46 serial EEPROM (64 x 16-bit words, 6-bit addresses) the drivers bit-bang through
// Cfg9346 in programming mode: EECS chip select, EESK clock, EEDI data in, EEDO data out.
//
// Protocol (Microwire): with CS high, the host clocks in a start bit 1, a 2-bit opcode and a
// 6-bit address, MSB first, sampling EEDI on the rising edge of EESK. For READ the chip then
// drives a dummy 0 and, on each following rising edge, the next data bit MSB first, moving on
// to the next word when clocked further. Linux probes with an 8-bit address first: the extra
// address clocks then shift data out early and the ID word reads back wrong, which is how it
// tells a 93C46 from a 93C56.

export const EEPROM_WORDS = 64;
const ADDR_BITS = 6;

const OP_READ = 0b10;
const OP_WRITE = 0b01;
const OP_ERASE = 0b11;
const OP_EXTENDED = 0b00;

type Phase = 'idle' | 'command' | 'read' | 'write-data' | 'ignore';

/** Eeprom93C46.saveState(). */
export interface EepromState {
  words: number[]; cs: boolean; sk: boolean; phase: Phase; shift: number; bits: number;
  address: number; writeEnabled: boolean; dataOut: boolean;
}

export class Eeprom93C46 {
  readonly words = new Uint16Array(EEPROM_WORDS);
  private cs = false;
  private sk = false;
  private phase: Phase = 'idle';
  private shift = 0;
  private bits = 0;
  private address = 0;
  private writeEnabled = false;
  /** Current value of EEDO. */
  dataOut = false;

  constructor(contents?: ArrayLike<number>) {
    if (contents !== undefined) for (let i = 0; i < EEPROM_WORDS && i < contents.length; i++) this.words[i] = contents[i]!;
  }

  /** Contents and the serial protocol's position (snapshots). */
  saveState(): EepromState {
    return {
      words: Array.from(this.words), cs: this.cs, sk: this.sk, phase: this.phase, shift: this.shift, bits: this.bits,
      address: this.address, writeEnabled: this.writeEnabled, dataOut: this.dataOut,
    };
  }

  loadState(s: EepromState): void {
    this.words.set(s.words.slice(0, EEPROM_WORDS));
    this.cs = s.cs; this.sk = s.sk; this.phase = s.phase; this.shift = s.shift; this.bits = s.bits;
    this.address = s.address; this.writeEnabled = s.writeEnabled; this.dataOut = s.dataOut;
  }

  /** Drive the pins (from a Cfg9346 write in programming mode). */
  setPins(cs: boolean, sk: boolean, di: boolean): void {
    if (!cs) {
      this.cs = false;
      this.sk = sk;
      this.phase = 'idle';
      this.dataOut = true; // ready/busy: a 93C46 reports "ready" once deselected
      return;
    }
    if (!this.cs) {
      // CS rising edge: start of a new instruction.
      this.cs = true;
      this.phase = 'command';
      this.shift = 0;
      this.bits = 0;
      this.dataOut = false;
    }
    const rising = sk && !this.sk;
    this.sk = sk;
    if (rising) this.clock(di);
  }

  private clock(di: boolean): void {
    switch (this.phase) {
      case 'command': {
        if (this.bits === 0 && !di) return; // waiting for the start bit
        this.shift = (this.shift << 1) | (di ? 1 : 0);
        this.bits++;
        if (this.bits === 3 + ADDR_BITS) this.decode();
        return;
      }
      case 'read': {
        const word = this.words[this.address]!;
        this.dataOut = ((word >>> (15 - this.bits)) & 1) === 1;
        this.bits++;
        if (this.bits === 16) {
          this.bits = 0;
          this.address = (this.address + 1) % EEPROM_WORDS;
        }
        return;
      }
      case 'write-data': {
        this.shift = ((this.shift << 1) | (di ? 1 : 0)) & 0xffff;
        this.bits++;
        if (this.bits === 16) {
          if (this.writeEnabled) this.words[this.address] = this.shift;
          this.phase = 'ignore';
          this.dataOut = true;
        }
        return;
      }
      default:
        return;
    }
  }

  private decode(): void {
    const op = (this.shift >>> ADDR_BITS) & 0b11;
    const addr = this.shift & (EEPROM_WORDS - 1);
    this.bits = 0;
    this.shift = 0;
    switch (op) {
      case OP_READ:
        this.phase = 'read';
        this.address = addr;
        this.dataOut = false; // the dummy zero bit
        return;
      case OP_WRITE:
        this.phase = 'write-data';
        this.address = addr;
        return;
      case OP_ERASE:
        if (this.writeEnabled) this.words[addr] = 0xffff;
        this.phase = 'ignore';
        this.dataOut = true;
        return;
      case OP_EXTENDED: {
        const sub = addr >>> (ADDR_BITS - 2);
        if (sub === 0b11) this.writeEnabled = true; // EWEN
        else if (sub === 0b00) this.writeEnabled = false; // EWDS
        else if (sub === 0b10 && this.writeEnabled) this.words.fill(0xffff); // ERAL
        this.phase = 'ignore';
        return;
      }
    }
  }
}

/**
 * Default RTL8139 EEPROM image: word 0 the 0x8129 ID, vendor/device and subsystem ids, the MAC
 * at words 7..9 (little-endian byte pairs, as the drivers read them).
 */
export function rtl8139EepromImage(mac: Uint8Array, ids: { vendorId: number; deviceId: number; subsystemVendorId: number; subsystemId: number }): Uint16Array {
  const w = new Uint16Array(EEPROM_WORDS);
  w[0] = 0x8129;
  w[1] = ids.vendorId;
  w[2] = ids.deviceId;
  w[3] = ids.subsystemVendorId;
  w[4] = ids.subsystemId;
  for (let i = 0; i < 3; i++) w[7 + i] = mac[2 * i]! | (mac[2 * i + 1]! << 8);
  return w;
}
