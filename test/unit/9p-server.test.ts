// The 9P2000.L server against a real temp directory: every operation Linux's v9fs client uses,
// read-only exports, malformed and hostile requests, and the host changing under the server.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  existsSync, lstatSync, mkdirSync, readFileSync, readlinkSync, rmSync, statSync, symlinkSync, truncateSync, writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { encode, str } from '../../lib/devices/virtio/9p/codec.js';
import { LINUX_ERRNO as E } from '../../lib/devices/virtio/9p/errno.js';
import {
  DOTL, GETATTR, LOCK_STATUS, NOFID, P9_AT_REMOVEDIR, QTDIR, QTFILE, QTSYMLINK, SETATTR, S_IFCHR, S_IFIFO,
  type Message,
} from '../../lib/devices/virtio/9p/protocol.js';
import { tempExport } from './p9-client.js';

type M<N extends Message['op']> = Extract<Message, { op: N }>;
const text = (b: Uint8Array): string => Buffer.from(b).toString();

/** Parses Rreaddir data into names (and their 9P entry fields). */
function dirents(data: Uint8Array): Array<{ name: string; qtype: number; offset: bigint; type: number }> {
  const v = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const out = [];
  let at = 0;
  while (at < data.byteLength) {
    const qtype = v.getUint8(at);
    const offset = v.getBigUint64(at + 13, true);
    const type = v.getUint8(at + 21);
    const n = v.getUint16(at + 22, true);
    out.push({ name: text(data.subarray(at + 24, at + 24 + n)), qtype, offset, type });
    at += 24 + n;
  }
  return out;
}

test('version: msize is clamped to the server\'s, unknown dialects get "unknown"', async () => {
  const t = await tempExport({ maxMsize: 512 * 1024 });
  try {
    const r = await t.client.version(4 << 20) as M<'Rversion'>;
    assert.equal(r.msize, 512 * 1024);
    assert.equal(text(r.version), '9P2000.L');
    const r2 = await t.client.version(600 * 1024) as M<'Rversion'>;
    assert.equal(r2.msize, 512 * 1024);
    const u = await t.client.ok('Tversion', { msize: 65536, version: str('9P2000.u') }) as M<'Rversion'>;
    assert.equal(text(u.version), 'unknown');
  } finally { await t.done(); }
});

for (const inline of [true, false]) test(`attach, walk, getattr, lopen, read, write, clunk (host calls ${inline ? 'inline where they cannot wait' : 'all on the threadpool'})`, async () => {
  const t = await tempExport({ inline });
  const c = t.client;
  try {
    writeFileSync(join(t.dir, 'hello.txt'), 'hello, world\n');
    mkdirSync(join(t.dir, 'sub'));
    await c.version();
    const a = await c.attach(0) as M<'Rattach'>;
    assert.equal(a.qid.type, QTDIR);
    const w = await c.walk(0, 1, 'hello.txt') as M<'Rwalk'>;
    assert.equal(w.op, 'Rwalk');
    assert.equal(w.wqids.length, 1);
    assert.equal(w.wqids[0]!.type, QTFILE);
    const g = await c.ok('Tgetattr', { fid: 1, requestMask: GETATTR.ALL }) as M<'Rgetattr'>;
    const st = statSync(join(t.dir, 'hello.txt'), { bigint: true });
    assert.equal(g.size, 13n);
    assert.equal(g.mode, Number(st.mode));
    assert.equal(g.uid, Number(st.uid));
    assert.equal(g.nlink, 1n);
    assert.equal(g.mtimeSec, st.mtimeNs / 1_000_000_000n);
    assert.equal(g.valid & GETATTR.BASIC, GETATTR.BASIC);
    await c.ok('Tlopen', { fid: 1, flags: DOTL.RDWR });
    const rd = await c.ok('Tread', { fid: 1, offset: 7n, count: 100 }) as M<'Rread'>;
    assert.equal(text(rd.data), 'world\n');
    const wr = await c.ok('Twrite', { fid: 1, offset: 0n, data: str('HELLO') }) as M<'Rwrite'>;
    assert.equal(wr.count, 5);
    assert.equal(readFileSync(join(t.dir, 'hello.txt'), 'utf8'), 'HELLO, world\n');
    const eof = await c.ok('Tread', { fid: 1, offset: 100n, count: 10 }) as M<'Rread'>;
    assert.equal(eof.data.byteLength, 0);
    await c.ok('Tclunk', { fid: 1 });
    assert.equal(await c.errno('Tread', { fid: 1, offset: 0n, count: 1 }), E.EBADF);
    // a partial walk: the first name exists, the second does not
    const pw = await c.walk(0, 2, 'sub/missing') as M<'Rwalk'>;
    assert.equal(pw.wqids.length, 1);
    assert.equal(await c.errno('Tclunk', { fid: 2 }), E.EBADF, 'a partial walk makes no fid');
    assert.equal(await c.errno('Twalk', { fid: 0, newfid: 2, wnames: [str('missing')] }), E.ENOENT);
    // clone (walk of no names), then walk in place
    await c.walk(0, 3, '');
    await c.ok('Twalk', { fid: 3, newfid: 3, wnames: [str('sub')] });
    const g3 = await c.ok('Tgetattr', { fid: 3, requestMask: GETATTR.BASIC }) as M<'Rgetattr'>;
    assert.equal(g3.qid.type, QTDIR);
    const calls = t.server.io.calls;
    if (!inline) assert.equal(calls.inline, 0);
    else if (t.server.io.local) assert.ok(calls.inline > calls.pooled, `inline ${calls.inline}, pooled ${calls.pooled}`);
  } finally { await t.done(); }
});

test('host calls: an export on a local filesystem runs stat, cached opens and cached reads inline', async () => {
  const t = await tempExport();
  const c = t.client;
  try {
    if (!t.server.io.local) {
      // Not an error: the temp dir is on a network filesystem here, so every call is pooled.
      assert.equal(t.server.io.calls.inline, 0);
      return;
    }
    writeFileSync(join(t.dir, 'f'), Buffer.alloc(8192, 7));
    readFileSync(join(t.dir, 'f')); // in the page cache
    await c.version();
    await c.attach(0);
    const before = { ...t.server.io.calls };
    await c.walk(0, 1, 'f');
    await c.ok('Tgetattr', { fid: 1, requestMask: GETATTR.BASIC });
    await c.ok('Tlopen', { fid: 1, flags: DOTL.RDONLY });
    const rd = await c.ok('Tread', { fid: 1, offset: 0n, count: 8192 }) as M<'Rread'>;
    assert.ok(rd.data.byteLength > 0 && rd.data.every((b) => b === 7));
    await c.ok('Tclunk', { fid: 1 });
    const after = t.server.io.calls;
    // walk: open + statx; getattr: statx; lopen: reopen + statx; read; clunk: two closes
    assert.ok(after.inline - before.inline >= 8, `inline ${after.inline - before.inline}`);
    assert.equal(after.pooled, before.pooled, 'nothing went to the threadpool');
    // a name the dcache does not hold goes to the threadpool and gets its real answer
    assert.equal(await c.errno('Twalk', { fid: 0, newfid: 2, wnames: [str(`never-${process.pid}-${Date.now()}`)] }), E.ENOENT);
  } finally { await t.done(); }
});

test('lcreate, mkdir, mknod (regular and FIFO; devices refused), symlink, readlink, link', async () => {
  const t = await tempExport();
  const c = t.client;
  try {
    await c.version();
    await c.attach(0);
    await c.walk(0, 1, '');
    const cr = await c.ok('Tlcreate', { fid: 1, name: str('new.txt'), flags: DOTL.WRONLY | DOTL.CREATE, mode: 0o640, gid: 0 }) as M<'Rlcreate'>;
    assert.equal(cr.qid.type, QTFILE);
    await c.ok('Twrite', { fid: 1, offset: 0n, data: str('created') });
    assert.equal(readFileSync(join(t.dir, 'new.txt'), 'utf8'), 'created');
    assert.equal(statSync(join(t.dir, 'new.txt')).mode & 0o7777, 0o640);
    // lcreate of an existing name with EXCL
    await c.walk(0, 2, '');
    assert.equal(await c.errno('Tlcreate', { fid: 2, name: str('new.txt'), flags: DOTL.WRONLY | DOTL.CREATE | DOTL.EXCL, mode: 0o600, gid: 0 }), E.EEXIST);

    const md = await c.ok('Tmkdir', { dfid: 0, name: str('d'), mode: 0o775, gid: 0 }) as M<'Rmkdir'>;
    assert.equal(md.qid.type, QTDIR);
    assert.equal(statSync(join(t.dir, 'd')).mode & 0o777, 0o775, 'the mode is the guest\'s, not narrowed by the umask');

    await c.ok('Tmknod', { dfid: 0, name: str('fifo'), mode: S_IFIFO | 0o600, major: 0, minor: 0, gid: 0 });
    assert.ok(lstatSync(join(t.dir, 'fifo')).isFIFO());
    await c.ok('Tmknod', { dfid: 0, name: str('plain'), mode: 0o100644, major: 0, minor: 0, gid: 0 });
    assert.ok(lstatSync(join(t.dir, 'plain')).isFile());
    assert.equal(await c.errno('Tmknod', { dfid: 0, name: str('null'), mode: S_IFCHR | 0o666, major: 1, minor: 3, gid: 0 }), E.EPERM);
    assert.equal(existsSync(join(t.dir, 'null')), false);
    // a FIFO is never opened on the host (a read would block a threadpool thread for good)
    await c.walk(0, 5, 'fifo');
    assert.equal(await c.errno('Tlopen', { fid: 5, flags: DOTL.RDONLY }), E.EOPNOTSUPP);

    const sl = await c.ok('Tsymlink', { fid: 0, name: str('ln'), symtgt: str('../../etc/passwd'), gid: 0 }) as M<'Rsymlink'>;
    assert.equal(sl.qid.type, QTSYMLINK);
    assert.equal(readlinkSync(join(t.dir, 'ln')), '../../etc/passwd');
    const wl = await c.walk(0, 3, 'ln') as M<'Rwalk'>;
    assert.equal(wl.wqids[0]!.type, QTSYMLINK);
    const rl = await c.ok('Treadlink', { fid: 3 }) as M<'Rreadlink'>;
    assert.equal(text(rl.target), '../../etc/passwd');

    await c.walk(0, 4, 'new.txt');
    await c.ok('Tlink', { dfid: 0, fid: 4, name: str('hard') });
    assert.equal(statSync(join(t.dir, 'hard')).ino, statSync(join(t.dir, 'new.txt')).ino);
    assert.equal(await c.errno('Tlink', { dfid: 0, fid: 0, name: str('dirlink') }), E.EPERM);
  } finally { await t.done(); }
});

test('rename, renameat, unlinkat, remove; fids follow a rename', async () => {
  const t = await tempExport();
  const c = t.client;
  try {
    mkdirSync(join(t.dir, 'a/b'), { recursive: true });
    writeFileSync(join(t.dir, 'a/b/f'), 'x');
    await c.version();
    await c.attach(0);
    await c.walk(0, 1, 'a');
    await c.walk(0, 2, 'a/b/f');
    await c.ok('Trenameat', { olddirfid: 0, oldname: str('a'), newdirfid: 0, newname: str('z') });
    assert.ok(existsSync(join(t.dir, 'z/b/f')));
    // fid 2 (z/b/f now) still works by handle, and its parent path followed the rename
    await c.ok('Trename', { fid: 2, dfid: 0, name: str('top') });
    assert.ok(existsSync(join(t.dir, 'top')));
    assert.ok(!existsSync(join(t.dir, 'z/b/f')));
    await c.walk(1, 3, 'b');
    assert.equal(await c.errno('Tunlinkat', { dirfid: 1, name: str('b'), flags: 0 }), E.EISDIR);
    await c.ok('Tunlinkat', { dirfid: 1, name: str('b'), flags: P9_AT_REMOVEDIR });
    assert.ok(!existsSync(join(t.dir, 'z/b')));
    await c.ok('Tremove', { fid: 2 });
    assert.ok(!existsSync(join(t.dir, 'top')));
    assert.equal(await c.errno('Tclunk', { fid: 2 }), E.EBADF, 'remove clunks');
    assert.equal(await c.errno('Tremove', { fid: 0 }), E.EBUSY);
    assert.equal(await c.errno('Tclunk', { fid: 0 }), E.EBADF, 'a failed remove still clunks');
  } finally { await t.done(); }
});

test('setattr: mode, size, times; statfs, fsync, lock, getlock, xattr', async () => {
  const t = await tempExport();
  const c = t.client;
  try {
    writeFileSync(join(t.dir, 'f'), 'abcdef');
    await c.version();
    await c.attach(0);
    await c.walk(0, 1, 'f');
    await c.ok('Tsetattr', { fid: 1, valid: SETATTR.MODE, mode: 0o600, uid: 0, gid: 0, size: 0n, atimeSec: 0n, atimeNsec: 0n, mtimeSec: 0n, mtimeNsec: 0n });
    assert.equal(statSync(join(t.dir, 'f')).mode & 0o7777, 0o600);
    await c.ok('Tsetattr', { fid: 1, valid: SETATTR.SIZE, mode: 0, uid: 0, gid: 0, size: 2n, atimeSec: 0n, atimeNsec: 0n, mtimeSec: 0n, mtimeNsec: 0n });
    assert.equal(readFileSync(join(t.dir, 'f'), 'utf8'), 'ab');
    await c.ok('Tsetattr', {
      fid: 1, valid: SETATTR.MTIME | SETATTR.MTIME_SET | SETATTR.ATIME | SETATTR.ATIME_SET, mode: 0, uid: 0, gid: 0, size: 0n,
      atimeSec: 1000n, atimeNsec: 5n, mtimeSec: 2000n, mtimeNsec: 123456789n,
    });
    const st = statSync(join(t.dir, 'f'), { bigint: true });
    assert.equal(st.mtimeNs, 2000_123456789n);
    assert.equal(st.atimeNs, 1000_000000005n);
    // uid/gid to the same owner: allowed (and an EPERM would be ignored, security_model=none)
    await c.ok('Tsetattr', { fid: 1, valid: SETATTR.UID | SETATTR.GID, mode: 0, uid: Number(st.uid), gid: Number(st.gid), size: 0n, atimeSec: 0n, atimeNsec: 0n, mtimeSec: 0n, mtimeNsec: 0n });
    const sf = await c.ok('Tstatfs', { fid: 0 }) as M<'Rstatfs'>;
    assert.ok(sf.bsize > 0 && sf.namelen === 255);
    assert.equal(await c.errno('Tfsync', { fid: 1, datasync: 0 }), E.EBADF, 'fsync needs an open fid');
    await c.ok('Tlopen', { fid: 1, flags: DOTL.WRONLY });
    await c.ok('Tfsync', { fid: 1, datasync: 0 });
    await c.ok('Tfsync', { fid: 1, datasync: 1 });
    const lk = await c.ok('Tlock', { fid: 1, lockType: 1, flags: 0, start: 0n, length: 0n, procId: 7, clientId: str('g') }) as M<'Rlock'>;
    assert.equal(lk.status, LOCK_STATUS.SUCCESS);
    const gl = await c.ok('Tgetlock', { fid: 1, lockType: 1, start: 0n, length: 10n, procId: 7, clientId: str('g') }) as M<'Rgetlock'>;
    assert.equal(gl.lockType, 2);
    assert.equal(await c.errno('Txattrwalk', { fid: 1, newfid: 9, name: str('user.x') }), E.EOPNOTSUPP);
    assert.equal(await c.errno('Txattrcreate', { fid: 1, name: str('user.x'), attrSize: 1n, flags: 0 }), E.EOPNOTSUPP);
  } finally { await t.done(); }
});

test('readdir lists every entry once across several calls, resuming at the offsets given', async () => {
  const t = await tempExport();
  const c = t.client;
  try {
    const names = new Set<string>();
    for (let i = 0; i < 300; i++) {
      const n = `file-${i}-${'x'.repeat(i % 40)}`;
      names.add(n);
      writeFileSync(join(t.dir, n), '');
    }
    mkdirSync(join(t.dir, 'adir'));
    names.add('adir');
    symlinkSync('nowhere', join(t.dir, 'alink'));
    names.add('alink');
    await c.version();
    await c.attach(0);
    await c.walk(0, 1, '');
    await c.ok('Tlopen', { fid: 1, flags: DOTL.RDONLY | DOTL.DIRECTORY });
    const seen: string[] = [];
    let offset = 0n;
    for (let calls = 0; calls < 1000; calls++) {
      const r = await c.ok('Treaddir', { fid: 1, offset, count: 1024 }) as M<'Rreaddir'>;
      assert.ok(r.data.byteLength <= 1024);
      const ents = dirents(r.data);
      if (ents.length === 0) break;
      for (const e of ents) {
        seen.push(e.name);
        if (e.name === 'adir') assert.equal(e.qtype, QTDIR);
        if (e.name === 'alink') assert.equal(e.qtype, QTSYMLINK);
      }
      offset = ents[ents.length - 1]!.offset;
    }
    const real = seen.filter((n) => n !== '.' && n !== '..');
    assert.equal(real.length, names.size);
    assert.deepEqual(new Set(real), names);
    assert.equal(await c.errno('Treaddir', { fid: 0, offset: 0n, count: 100 }), E.EBADF, 'readdir needs an open fid');
  } finally { await t.done(); }
});

test('read-only export: every change is EROFS, reads work', async () => {
  const t = await tempExport({ readonly: true });
  const c = t.client;
  try {
    writeFileSync(join(t.dir, 'f'), 'data');
    mkdirSync(join(t.dir, 'd'));
    const modeBefore = statSync(join(t.dir, 'f')).mode;
    await c.version();
    await c.attach(0);
    await c.walk(0, 1, 'f');
    const zero = { uid: 0, gid: 0, size: 0n, atimeSec: 0n, atimeNsec: 0n, mtimeSec: 0n, mtimeNsec: 0n };
    const refusals: Array<Promise<number>> = [
      c.errno('Tlopen', { fid: 1, flags: DOTL.WRONLY }),
      c.errno('Tlopen', { fid: 1, flags: DOTL.RDWR }),
      c.errno('Tlopen', { fid: 1, flags: DOTL.RDONLY | DOTL.TRUNC }),
      c.errno('Tsetattr', { fid: 1, valid: SETATTR.MODE, mode: 0o777, ...zero }),
      c.errno('Tsetattr', { fid: 1, valid: SETATTR.SIZE, mode: 0, ...zero }),
      c.errno('Tsetattr', { fid: 1, valid: SETATTR.MTIME, mode: 0, ...zero }),
      c.errno('Tmkdir', { dfid: 0, name: str('x'), mode: 0o755, gid: 0 }),
      c.errno('Tmknod', { dfid: 0, name: str('x'), mode: S_IFIFO | 0o644, major: 0, minor: 0, gid: 0 }),
      c.errno('Tsymlink', { fid: 0, name: str('x'), symtgt: str('f'), gid: 0 }),
      c.errno('Tlink', { dfid: 0, fid: 1, name: str('x') }),
      c.errno('Trenameat', { olddirfid: 0, oldname: str('f'), newdirfid: 0, newname: str('g') }),
      c.errno('Trename', { fid: 1, dfid: 0, name: str('g') }),
      c.errno('Tunlinkat', { dirfid: 0, name: str('f'), flags: 0 }),
      c.errno('Tunlinkat', { dirfid: 0, name: str('d'), flags: P9_AT_REMOVEDIR }),
      c.errno('Txattrcreate', { fid: 1, name: str('user.a'), attrSize: 1n, flags: 0 }),
    ];
    for (const [i, p] of refusals.entries()) assert.equal(await p, E.EROFS, `refusal ${i}`);
    await c.walk(0, 2, '');
    assert.equal(await c.errno('Tlcreate', { fid: 2, name: str('x'), flags: DOTL.WRONLY | DOTL.CREATE, mode: 0o644, gid: 0 }), E.EROFS);
    await c.walk(0, 3, 'f');
    assert.equal(await c.errno('Tremove', { fid: 3 }), E.EROFS);
    assert.deepEqual((await import('node:fs')).readdirSync(t.dir).sort(), ['d', 'f']);
    assert.equal(statSync(join(t.dir, 'f')).mode, modeBefore, 'mode unchanged');
    await c.ok('Tlopen', { fid: 1, flags: DOTL.RDONLY });
    const r = await c.ok('Tread', { fid: 1, offset: 0n, count: 10 }) as M<'Rread'>;
    assert.equal(text(r.data), 'data');
    assert.equal(await c.errno('Twrite', { fid: 1, offset: 0n, data: str('no') }), E.EROFS);
    assert.equal(readFileSync(join(t.dir, 'f'), 'utf8'), 'data');
  } finally { await t.done(); }
});

test('malformed requests: fid reuse, 17 names, read count over msize, bad sizes, unknown types, short chains', async () => {
  const t = await tempExport({ maxMsize: 65536 });
  const c = t.client;
  try {
    writeFileSync(join(t.dir, 'big'), Buffer.alloc(200_000, 0x61));
    await c.version(65536);
    await c.attach(0);
    assert.equal(await c.errno('Tattach', { fid: 0, afid: NOFID, uname: str(''), aname: str(''), nUname: 0 }), E.EBADF, 'attach to a live fid');
    await c.walk(0, 1, 'big');
    assert.equal(await c.errno('Twalk', { fid: 0, newfid: 1, wnames: [str('big')] }), E.EBADF, 'walk to a live fid');
    assert.equal(await c.errno('Twalk', { fid: 0, newfid: NOFID, wnames: [] }), E.EINVAL, 'NOFID as newfid');
    const seventeen = Array.from({ length: 17 }, () => str('.'));
    assert.equal(await c.errno('Twalk', { fid: 0, newfid: 5, wnames: seventeen }), E.EINVAL);
    assert.equal(await c.errno('Twalk', { fid: 0, newfid: 5, wnames: [str('a/b')] }), E.EINVAL, 'a / inside a name');
    assert.equal(await c.errno('Twalk', { fid: 0, newfid: 5, wnames: [str('a\0b')] }), E.EINVAL, 'a NUL inside a name');
    assert.equal(await c.errno('Twalk', { fid: 0, newfid: 5, wnames: [str('')] }), E.EINVAL, 'an empty name');
    assert.equal(await c.errno('Tmkdir', { dfid: 0, name: str('..'), mode: 0o755, gid: 0 }), E.EINVAL);
    await c.ok('Tlopen', { fid: 1, flags: DOTL.RDONLY });
    assert.equal(await c.errno('Tlopen', { fid: 1, flags: DOTL.RDONLY }), E.EBADF, 'a second open of one fid');
    const r = await c.ok('Tread', { fid: 1, offset: 0n, count: 0xffffffff }) as M<'Rread'>;
    assert.equal(r.data.byteLength, 65536 - 11, 'a read over msize is cut to msize');
    // a reply room smaller than the read: cut to the room
    const small = await c.raw(encode({ op: 'Tread', tag: 3, fid: 1, offset: 0n, count: 4096 }), 100);
    assert.equal(small.byteLength, 100);
    // a message larger than msize
    const huge = encode({ op: 'Twrite', tag: 4, fid: 1, offset: 0n, data: new Uint8Array(70000) });
    const hr = await c.raw(huge);
    assert.equal(hr[4], 7);
    assert.equal(new DataView(hr.buffer).getUint32(7, true), E.EINVAL);
    // a Twrite whose count disagrees with its size
    const tw = encode({ op: 'Twrite', tag: 5, fid: 1, offset: 0n, data: new Uint8Array(10) });
    new DataView(tw.buffer).setUint32(19, 11, true);
    const twr = await c.raw(tw);
    assert.equal(new DataView(twr.buffer).getUint32(7, true), E.EINVAL);
    // size field past the chain; unknown type; a legacy 9P2000 Topen
    const bad = encode({ op: 'Tclunk', tag: 6, fid: 1 });
    new DataView(bad.buffer).setUint32(0, 100, true);
    assert.equal(new DataView((await c.raw(bad)).buffer).getUint32(7, true), E.EINVAL);
    const unk = new Uint8Array([11, 0, 0, 0, 112, 7, 0, 0, 0, 0, 0]);
    const ur = await c.raw(unk);
    assert.equal(ur[4], 7);
    assert.equal(new DataView(ur.buffer).getUint16(5, true), 7);
    assert.equal(new DataView(ur.buffer).getUint32(7, true), E.EOPNOTSUPP);
    // a chain shorter than a header, and a reply room shorter than an Rlerror: 0 bytes, counted
    const before = t.server.stats.protocolErrors;
    assert.equal((await c.raw(new Uint8Array(3))).byteLength, 0);
    assert.equal((await c.raw(encode({ op: 'Tclunk', tag: 8, fid: 99 }), 5)).byteLength, 0);
    assert.equal(t.server.stats.protocolErrors, before + 2);
    // a request split over several readable buffers and a reply over several writable ones
    const split = encode({ op: 'Twalk', tag: 9, fid: 0, newfid: 6, wnames: [str('big')] });
    const parts = [split.subarray(0, 3), split.subarray(3, 12), split.subarray(12)];
    const outs = [new Uint8Array(5), new Uint8Array(4), new Uint8Array(100)];
    const len = (await c.raw(parts, outs)).byteLength;
    assert.equal(len, 7 + 2 + 13);
    assert.equal(outs[0]![4], 111);
    // everything still works afterwards
    await c.ok('Tclunk', { fid: 6 });
  } finally { await t.done(); }
});

test('flush answers after the request it names; requests complete in any order', async () => {
  const t = await tempExport();
  const c = t.client;
  try {
    writeFileSync(join(t.dir, 'f'), Buffer.alloc(1 << 20, 1));
    await c.version();
    await c.attach(0);
    await c.walk(0, 1, 'f');
    await c.ok('Tlopen', { fid: 1, flags: DOTL.RDONLY });
    const order: string[] = [];
    const read = c.raw(encode({ op: 'Tread', tag: 100, fid: 1, offset: 0n, count: 1 << 20 })).then((r) => { order.push(`read:${r[4]}`); });
    const flush = c.raw(encode({ op: 'Tflush', tag: 101, oldtag: 100 })).then((r) => { order.push(`flush:${r[4]}`); });
    await Promise.all([read, flush]);
    assert.deepEqual(order, ['read:117', 'flush:109']);
    // flush of a tag not in flight answers at once
    const f2 = await c.call('Tflush', { oldtag: 4242 });
    assert.equal(f2.op, 'Rflush');
    // a duplicate tag in flight is refused, the first request still answered
    const p1 = c.raw(encode({ op: 'Tread', tag: 200, fid: 1, offset: 0n, count: 1 << 19 }));
    const p2 = c.raw(encode({ op: 'Tgetattr', tag: 200, fid: 1, requestMask: 1n }));
    const [r1, r2] = await Promise.all([p1, p2]);
    assert.equal(r1[4], 117);
    assert.equal(r2[4], 7);
    // many concurrent requests all answered
    const many = await Promise.all(Array.from({ length: 50 }, (_, i) => c.call('Tgetattr', { fid: 1, requestMask: 1n }, 300 + i)));
    assert.ok(many.every((m) => m.op === 'Rgetattr'));
    assert.equal(t.server.pending, 0);
  } finally { await t.done(); }
});

test('a host file that changes size under reads: short reads, no error, no stale bytes', async () => {
  const t = await tempExport();
  const c = t.client;
  try {
    const p = join(t.dir, 'f');
    writeFileSync(p, Buffer.alloc(100_000, 0x41));
    await c.version();
    await c.attach(0);
    await c.walk(0, 1, 'f');
    await c.ok('Tlopen', { fid: 1, flags: DOTL.RDONLY });
    for (let i = 0; i < 50; i++) {
      const size = (i * 7919) % 100_000;
      const pr = c.ok('Tread', { fid: 1, offset: 50_000n, count: 60_000 });
      if (i % 2) truncateSync(p, size); else writeFileSync(p, Buffer.alloc(size + 1000, 0x41));
      const r = await pr as M<'Rread'>;
      assert.ok(r.data.byteLength <= 60_000);
      assert.ok(r.data.every((b) => b === 0x41 || b === 0), 'only file bytes (or zeros of a hole)');
    }
    truncateSync(p, 10);
    const r = await c.ok('Tread', { fid: 1, offset: 50_000n, count: 100 }) as M<'Rread'>;
    assert.equal(r.data.byteLength, 0);
  } finally { await t.done(); }
});

test('an export removed while in use: errors, not crashes; nothing created elsewhere', async () => {
  const t = await tempExport();
  const c = t.client;
  try {
    mkdirSync(join(t.dir, 'sub'));
    writeFileSync(join(t.dir, 'sub/f'), 'x');
    await c.version();
    await c.attach(0);
    await c.walk(0, 1, 'sub');
    await c.walk(0, 2, 'sub/f');
    await c.ok('Tlopen', { fid: 2, flags: DOTL.RDONLY });
    rmSync(t.dir, { recursive: true, force: true });
    const r = await c.ok('Tread', { fid: 2, offset: 0n, count: 10 }) as M<'Rread'>;
    assert.equal(text(r.data), 'x', 'an open file stays readable (as on Linux)');
    assert.notEqual(await c.errno('Twalk', { fid: 0, newfid: 3, wnames: [str('sub')] }), 0);
    assert.notEqual(await c.errno('Tmkdir', { dfid: 1, name: str('again'), mode: 0o755, gid: 0 }), 0);
    assert.notEqual(await c.errno('Tlcreate', { fid: 1, name: str('n'), flags: DOTL.WRONLY | DOTL.CREATE, mode: 0o644, gid: 0 }), 0);
    const g = await c.call('Tgetattr', { fid: 1, requestMask: GETATTR.BASIC });
    assert.ok(g.op === 'Rgetattr' || g.op === 'Rlerror');
    assert.equal(existsSync(t.dir), false);
  } finally { await t.done(); }
});
