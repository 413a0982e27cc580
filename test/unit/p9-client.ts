// A 9P2000.L client for unit tests: encodes T-messages with the codec, hands them to a
// P9Server as a chain would (readable buffers, writable room) and decodes the reply.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decode, encode, isDecodeError, str } from '../../lib/devices/virtio/9p/codec.js';
import { P9Server } from '../../lib/devices/virtio/9p/server.js';
import { NOFID, type Message, type MessageName } from '../../lib/devices/virtio/9p/protocol.js';

type Body<N extends MessageName> = Omit<Extract<Message, { op: N }>, 'tag' | 'op'>;

export class P9TestClient {
  private nextTag = 1;
  constructor(readonly server: P9Server, readonly room = 1 << 20) {}

  /** Sends raw bytes; resolves with the raw reply (length as the server reported it). */
  raw(req: Uint8Array | Uint8Array[], room: number | Uint8Array[] = this.room): Promise<Uint8Array> {
    const readable = Array.isArray(req) ? req : [req];
    const writable = Array.isArray(room) ? room : [new Uint8Array(room)];
    return new Promise((resolve) => {
      this.server.handle(readable, writable, (len) => {
        const out = new Uint8Array(len);
        let at = 0;
        for (const w of writable) {
          if (at >= len) break;
          const n = Math.min(w.byteLength, len - at);
          out.set(w.subarray(0, n), at);
          at += n;
        }
        resolve(out);
      });
    });
  }

  /** Sends a T-message; resolves with the decoded R-message. */
  async call<N extends MessageName>(name: N, body: Body<N>, tag = this.tag()): Promise<Message> {
    const reply = await this.raw(encode({ op: name, tag, ...body } as unknown as Message));
    const m = decode(reply);
    if (isDecodeError(m)) throw new Error(`bad reply: ${m.reason}`);
    if (m.tag !== tag) throw new Error(`reply tag ${m.tag} for request tag ${tag}`);
    return m;
  }

  tag(): number {
    const t = this.nextTag;
    this.nextTag = (this.nextTag % 0xfffe) + 1;
    return t;
  }

  /** Like call(), but an Rlerror becomes its errno (a number) and anything else the message. */
  async ok<N extends MessageName>(name: N, body: Body<N>): Promise<Message> {
    const m = await this.call(name, body);
    if (m.op === 'Rlerror') throw Object.assign(new Error(`${name}: Rlerror ${m.ecode}`), { ecode: m.ecode });
    return m;
  }

  /** The errno of an Rlerror reply, or 0 for any other reply. */
  async errno<N extends MessageName>(name: N, body: Body<N>): Promise<number> {
    const m = await this.call(name, body);
    return m.op === 'Rlerror' ? m.ecode : 0;
  }

  async version(msize = 1 << 20): Promise<Message> {
    return this.ok('Tversion', { msize, version: str('9P2000.L') });
  }

  async attach(fid = 0): Promise<Message> {
    return this.ok('Tattach', { fid, afid: NOFID, uname: str('root'), aname: str(''), nUname: 0 });
  }

  /** Walks from `fid` to `newfid` by a '/'-separated path. */
  async walk(fid: number, newfid: number, path: string): Promise<Message> {
    return this.call('Twalk', { fid, newfid, wnames: path === '' ? [] : path.split('/').map(str) });
  }
}

/** A fresh temp directory and a server exporting it; `done()` closes both. */
export async function tempExport(opts: { readonly?: boolean; maxMsize?: number; maxFids?: number; inline?: boolean } = {}): Promise<{
  dir: string; server: P9Server; client: P9TestClient; done(): Promise<void>;
}> {
  const dir = mkdtempSync(join(tmpdir(), 'nkvm-9p-'));
  const server = await P9Server.open({ path: dir, tag: 't', readonly: opts.readonly ?? false }, { maxMsize: opts.maxMsize, maxFids: opts.maxFids, inline: opts.inline });
  const client = new P9TestClient(server);
  return {
    dir, server, client,
    async done() {
      await server.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
