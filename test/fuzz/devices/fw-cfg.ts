// fw_cfg (traditional port interface; the device offers no DMA interface, and its ID item says
// so): selector writes of every width, data reads past the end of items, data-port writes,
// resets and snapshot round trips, against a model of what each read must return.
import {
  buildE820File, FwCfg, FW_CFG_DATA, FW_CFG_FILE_DIR, FW_CFG_ID, FW_CFG_IO_SIZE, FW_CFG_SELECTOR, FW_CFG_VERSION_DMA,
  FW_CFG_WRITE_CHANNEL, type FwCfgState,
} from '../../../lib/devices/fw-cfg.js';
import { checkReadValue, type FuzzInstance, type FuzzTarget } from '../harness.js';
import type { Rng } from '../rng.js';

const EMPTY = new Uint8Array(0);

class FwCfgFuzz implements FuzzInstance {
  op = 'none';
  private readonly fw: FwCfg;
  /** key → bytes, what the device was given (the model). */
  private readonly items = new Map<number, Uint8Array>();
  private readonly keys: number[];
  private current: Uint8Array = EMPTY;
  private offset = 0;
  private bytesRead = 0;

  constructor(private readonly rng: Rng) {
    this.fw = new FwCfg({ cpus: rng.range(1, 255) });
    this.fw.addFile('etc/e820', buildE820File([{ addr: 0, size: 0x9fc00, type: 1 }, { addr: 0x100000, size: 0x7f00000, type: 1 }]));
    this.fw.addFile('etc/empty', new Uint8Array(0));
    this.fw.addFile('opt/big', rng.bytes(rng.range(1, 70_000)));
    for (let i = 0; i < 8; i++) this.fw.addFile(`opt/f${i}`, rng.bytes(rng.int(300)));
    this.fw.setItem(0x0003, rng.bytes(8));
    this.fw.setItem(0x8001, rng.bytes(rng.int(64)));
    for (let key = 0; key < 0x40; key++) this.remember(key);
    for (const key of [0x8000, 0x8001, 0x8002]) this.remember(key);
    this.keys = [...this.items.keys()];
    this.select(0);
  }

  private remember(key: number): void {
    const b = this.fw.item(key);
    if (b !== undefined) this.items.set(key, b);
  }

  private select(key: number): void {
    this.current = this.items.get(key & ~FW_CFG_WRITE_CHANNEL) ?? EMPTY;
    this.offset = 0;
  }

  step(): void {
    const r = this.rng;
    const k = r.int(100);
    if (k < 20) {
      const size = r.size();
      let key = r.chance(0.7) ? r.pick(this.keys) : r.u16();
      if (r.chance(0.1)) key |= FW_CFG_WRITE_CHANNEL;
      const v = size === 4 ? (key | (r.u16() * 0x1_0000)) >>> 0 : key;
      this.op = `select(0x${v.toString(16)}, ${size})`;
      this.fw.write(FW_CFG_SELECTOR, size, v);
      this.select(size >= 2 ? v & 0xffff : v & 0xff);
    } else if (k < 90) {
      const size = r.size();
      this.op = `read data (${size})`;
      const v = this.fw.read(FW_CFG_DATA, size);
      checkReadValue(v, 1, this.op);
      const want = this.offset < this.current.length ? this.current[this.offset++]! : 0;
      if (v !== want) throw new Error(`data read 0x${v.toString(16)}, the item has 0x${want.toString(16)} at offset ${this.offset - 1}`);
      this.bytesRead++;
    } else if (k < 95) {
      const off = r.int(FW_CFG_IO_SIZE);
      const size = r.size();
      this.op = `read(${off}, ${size})`;
      const v = this.fw.read(off, size);
      checkReadValue(v, 1, this.op);
      if (off === FW_CFG_DATA) {
        // A data read moves on one byte whatever its width.
        const want = this.offset < this.current.length ? this.current[this.offset++]! : 0;
        if (v !== want) throw new Error(`data read 0x${v.toString(16)}, the item has 0x${want.toString(16)}`);
      } else if (v !== 0xff) throw new Error(`selector read 0x${v.toString(16)} (write-only)`);
    } else if (k < 98) {
      const size = r.size();
      const v = r.value(size);
      this.op = `data write(${size}, 0x${v.toString(16)})`;
      this.fw.write(FW_CFG_DATA, size, v); // ignored: no write support
    } else if (k < 99) {
      this.op = 'reset()';
      this.fw.reset();
      this.select(0);
    } else {
      this.op = 'saveState/loadState round trip';
      const s = JSON.stringify(this.fw.saveState());
      this.fw.loadState(JSON.parse(s) as FwCfgState);
      const again = JSON.stringify(this.fw.saveState());
      if (again !== s) throw new Error(`state changed by a round trip:\n${s}\n${again}`);
    }
  }

  check(): void {
    const s = this.fw.saveState();
    if (s.offset !== this.offset) throw new Error(`offset ${s.offset}, expected ${this.offset}`);
    if ((this.items.get(FW_CFG_ID)![0]! & FW_CFG_VERSION_DMA) !== 0) throw new Error('the ID item advertises DMA, which the device does not have');
    if (this.items.get(FW_CFG_FILE_DIR) === undefined) throw new Error('no file directory');
  }

  stats(): Record<string, number> {
    return { dataBytes: this.bytesRead };
  }

  close(): void {}
}

export const fwCfgTarget: FuzzTarget = { name: 'fw-cfg', file: 'fw-cfg', create: (rng) => new FwCfgFuzz(rng) };
