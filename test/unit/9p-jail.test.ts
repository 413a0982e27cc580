// An export is a jail: no request reaches a host file outside it. Each test puts a secret file
// and a directory next to the export, then tries to reach them from inside: `..`, absolute and
// relative symlinks made on the host, symlinks the guest makes and then walks, and components
// swapped for symlinks by concurrent renames (host-side and by the guest's own Trenameat)
// between walks and opens.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { rename } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { str } from '../../lib/devices/virtio/9p/codec.js';
import { LINUX_ERRNO as E } from '../../lib/devices/virtio/9p/errno.js';
import { P9Server } from '../../lib/devices/virtio/9p/server.js';
import { DOTL, GETATTR, QTSYMLINK, SETATTR, type Message } from '../../lib/devices/virtio/9p/protocol.js';
import { P9TestClient } from './p9-client.js';

type M<N extends Message['op']> = Extract<Message, { op: N }>;
const text = (b: Uint8Array): string => Buffer.from(b).toString();

async function jail(): Promise<{ base: string; exp: string; out: string; c: P9TestClient; done(): Promise<void> }> {
  const base = mkdtempSync(join(tmpdir(), 'nkvm-9p-jail-'));
  const exp = join(base, 'export');
  const out = join(base, 'outside');
  mkdirSync(exp);
  mkdirSync(out);
  writeFileSync(join(out, 'secret'), 'SECRET');
  writeFileSync(join(base, 'secret'), 'SECRET');
  const secretMode = statSync(join(out, 'secret')).mode;
  const server = await P9Server.open({ path: exp, tag: 'j', readonly: false });
  const c = new P9TestClient(server);
  await c.version();
  await c.attach(0);
  return {
    base, exp, out, c,
    async done() {
      await server.close();
      // nothing outside changed: same entries, same content
      assert.deepEqual(readdirSync(out), ['secret']);
      assert.equal(readFileSync(join(out, 'secret'), 'utf8'), 'SECRET');
      assert.equal(statSync(join(out, 'secret')).mode, secretMode);
      assert.deepEqual(readdirSync(base).sort(), ['export', 'outside', 'secret']);
      rmSync(base, { recursive: true, force: true });
    },
  };
}

/** Tries to read `path` through the server; returns the bytes read or the errno. */
async function tryRead(c: P9TestClient, path: string, fid: number): Promise<string | number> {
  const w = await c.walk(0, fid, path);
  if (w.op === 'Rlerror') return w.ecode;
  if ((w as M<'Rwalk'>).wqids.length !== path.split('/').length) return -1;
  try {
    const o = await c.call('Tlopen', { fid, flags: DOTL.RDONLY });
    if (o.op === 'Rlerror') return o.ecode;
    const r = await c.call('Tread', { fid, offset: 0n, count: 100 });
    return r.op === 'Rlerror' ? r.ecode : text((r as M<'Rread'>).data);
  } finally {
    await c.call('Tclunk', { fid });
  }
}

test('.. never leaves the export root', async () => {
  const j = await jail();
  try {
    writeFileSync(join(j.exp, 'inside'), 'in');
    mkdirSync(join(j.exp, 'sub'));
    const root = (await j.c.ok('Tgetattr', { fid: 0, requestMask: GETATTR.INO }) as M<'Rgetattr'>).qid.path;
    for (const p of ['..', '../..', 'sub/../..', 'sub/../../..', '../outside', '../secret', '../../..']) {
      const w = await j.c.walk(0, 1, p);
      if (w.op === 'Rwalk') {
        if (w.wqids.length === p.split('/').length) {
          const q = (await j.c.ok('Tgetattr', { fid: 1, requestMask: GETATTR.INO }) as M<'Rgetattr'>).qid.path;
          assert.equal(q, root, `${p} ends at the root`);
          await j.c.ok('Tclunk', { fid: 1 });
        }
      }
    }
    // `..` of the root is the root, where there is no "secret" (a partial walk: -1)
    assert.equal(await tryRead(j.c, '../secret', 2), -1);
    assert.equal(await tryRead(j.c, '../outside/secret', 3), -1);
    assert.equal(await tryRead(j.c, 'sub/../../secret', 4), -1);
    assert.equal(await tryRead(j.c, '../inside', 5), 'in', '.. at the root is the root');
  } finally { await j.done(); }
});

test('host symlinks (absolute and relative, to files and directories) are never followed', async () => {
  const j = await jail();
  try {
    symlinkSync(j.out, join(j.exp, 'abs'));
    symlinkSync('../outside', join(j.exp, 'rel'));
    symlinkSync(join(j.out, 'secret'), join(j.exp, 'absfile'));
    symlinkSync('../outside/secret', join(j.exp, 'relfile'));
    symlinkSync('/', join(j.exp, 'slash'));
    mkdirSync(join(j.exp, 'sub'));
    symlinkSync('../../outside', join(j.exp, 'sub/up'));
    const c = j.c;
    for (const [i, p] of ['abs/secret', 'rel/secret', 'slash/etc/passwd', 'sub/up/secret'].entries()) {
      const r = await tryRead(c, p, 10 + i);
      assert.ok(typeof r === 'number', `${p}: ${r}`);
    }
    for (const [i, p] of ['absfile', 'relfile', 'abs', 'rel'].entries()) {
      const w = await c.walk(0, 20 + i, p) as M<'Rwalk'>;
      assert.equal(w.wqids[0]!.type, QTSYMLINK, `${p} is seen as a symlink`);
      assert.equal(await c.errno('Tlopen', { fid: 20 + i, flags: DOTL.RDONLY }), E.ELOOP, `${p} is not opened`);
      assert.equal(await c.errno('Tlopen', { fid: 20 + i, flags: DOTL.WRONLY | DOTL.TRUNC }), E.ELOOP);
      const zero = { mode: 0o777, uid: 0, gid: 0, size: 0n, atimeSec: 0n, atimeNsec: 0n, mtimeSec: 0n, mtimeNsec: 0n };
      assert.equal(await c.errno('Tsetattr', { fid: 20 + i, valid: SETATTR.MODE, ...zero }), E.EOPNOTSUPP);
      assert.equal(await c.errno('Tsetattr', { fid: 20 + i, valid: SETATTR.SIZE, ...zero }), E.EINVAL);
      // times of a symlink apply to the link itself
      await c.call('Tsetattr', { fid: 20 + i, valid: SETATTR.MTIME | SETATTR.MTIME_SET, ...zero, mtimeSec: 5n });
      // creating "in" a symlinked directory
      assert.notEqual(await c.errno('Tmkdir', { dfid: 20 + i, name: str('planted'), mode: 0o755, gid: 0 }), 0);
      assert.notEqual(await c.errno('Tlcreate', { fid: 20 + i, name: str('planted'), flags: DOTL.WRONLY | DOTL.CREATE, mode: 0o644, gid: 0 }), 0);
      assert.notEqual(await c.errno('Tsymlink', { fid: 20 + i, name: str('planted'), symtgt: str('x'), gid: 0 }), 0);
      assert.notEqual(await c.errno('Tunlinkat', { dirfid: 20 + i, name: str('secret'), flags: 0 }), 0);
      assert.notEqual(await c.errno('Trenameat', { olddirfid: 20 + i, oldname: str('secret'), newdirfid: 0, newname: str('stolen') }), 0);
      assert.notEqual(await c.errno('Twalk', { fid: 20 + i, newfid: 40 + i, wnames: [str('secret')] }), 0);
      // a hard link of the symlink fid links the symlink itself, not its target
      const lr = await c.errno('Tlink', { dfid: 0, fid: 20 + i, name: str(`hl${i}`) });
      if (lr === 0) assert.ok(lstatSync(join(j.exp, `hl${i}`)).isSymbolicLink());
    }
    assert.equal(statSync(join(j.out, 'secret')).nlink, 1);
    assert.equal(lstatSync(join(j.out, 'secret')).mtimeMs > 10_000, true);
  } finally { await j.done(); }
});

test('symlinks the guest makes, then walks, stay links', async () => {
  const j = await jail();
  try {
    const c = j.c;
    const targets = ['/', '/etc', '..', '../outside', '../../', j.out, `${j.out}/secret`, 'a/../../..'];
    for (const [i, t] of targets.entries()) {
      await c.ok('Tsymlink', { fid: 0, name: str(`g${i}`), symtgt: str(t), gid: 0 });
      assert.equal(await tryRead(c, `g${i}`, 100 + i), E.ELOOP, `g${i} -> ${t}`);
      const deeper = await tryRead(c, `g${i}/secret`, 200 + i);
      assert.ok(typeof deeper === 'number', `g${i}/secret`);
    }
    // a symlink the guest makes over a directory name the guest holds a fid for
    mkdirSync(join(j.exp, 'd'));
    await c.walk(0, 300, 'd');
    await c.ok('Tunlinkat', { dirfid: 0, name: str('d'), flags: 0x200 });
    await c.ok('Tsymlink', { fid: 0, name: str('d'), symtgt: str(j.out), gid: 0 });
    // the fid still names the removed directory, never the link's target
    assert.notEqual(await c.errno('Tlcreate', { fid: 300, name: str('planted'), flags: DOTL.WRONLY | DOTL.CREATE, mode: 0o644, gid: 0 }), 0);
    const w = await c.walk(300, 301, '..');
    assert.equal(w.op, 'Rwalk', '.. from it resolves by name beneath the root');
    assert.equal(await tryRead(c, 'd/secret', 302), -1, 'the walk stops at the link');
  } finally { await j.done(); }
});

test('the rename race: components swapped for symlinks while walking and opening', async () => {
  const j = await jail();
  try {
    const c = j.c;
    // "d" alternates between a real directory and a symlink to the outside directory
    mkdirSync(join(j.exp, 'real'));
    writeFileSync(join(j.exp, 'real/secret'), 'INSIDE');
    symlinkSync(j.out, join(j.exp, 'evil'));
    mkdirSync(join(j.exp, 'real/inner'));
    writeFileSync(join(j.exp, 'real/inner/secret'), 'INSIDE');
    let stop = false;
    let swaps = 0;
    // host-side swapper
    const swapper = (async () => {
      while (!stop) {
        await rename(join(j.exp, 'real'), join(j.exp, 'tmp')).catch(() => {});
        await rename(join(j.exp, 'evil'), join(j.exp, 'real')).catch(() => {});
        await rename(join(j.exp, 'real'), join(j.exp, 'evil')).catch(() => {});
        await rename(join(j.exp, 'tmp'), join(j.exp, 'real')).catch(() => {});
        swaps++;
      }
    })();
    // the guest's own swapper through Trenameat
    const guestSwapper = (async () => {
      while (!stop) {
        await c.call('Trenameat', { olddirfid: 0, oldname: str('real'), newdirfid: 0, newname: str('tmp2') });
        await c.call('Trenameat', { olddirfid: 0, oldname: str('evil'), newdirfid: 0, newname: str('real') });
        await c.call('Trenameat', { olddirfid: 0, oldname: str('real'), newdirfid: 0, newname: str('evil') });
        await c.call('Trenameat', { olddirfid: 0, oldname: str('tmp2'), newdirfid: 0, newname: str('real') });
      }
    })();
    const seen = new Map<string, number>();
    const deadline = Date.now() + 3000;
    let attempts = 0;
    let fid = 1000;
    while (Date.now() < deadline || attempts < 20) {
      attempts++;
      // Requests the server answers inline resolve in microtasks: give the swappers' rename
      // completions an event-loop turn, as a guest's doorbells do between requests.
      await new Promise((r) => setImmediate(r));
      for (const p of ['real/secret', 'real/inner/secret', 'real/inner/../secret', 'real/../real/secret']) {
        const r = await tryRead(c, p, fid++);
        seen.set(String(r), (seen.get(String(r)) ?? 0) + 1);
        assert.notEqual(r, 'SECRET', `${p} read outside the export after ${attempts} attempts`);
      }
      // walk first, then open after more swaps: the fid keeps the file it walked to
      const w = await c.walk(0, fid, 'real');
      if (w.op === 'Rwalk' && w.wqids.length === 1) {
        await new Promise((r) => setImmediate(r));
        const w2 = await c.walk(fid, fid + 1, 'secret');
        if (w2.op === 'Rwalk' && w2.wqids.length === 1) {
          const o = await c.call('Tlopen', { fid: fid + 1, flags: DOTL.RDONLY });
          if (o.op === 'Rlopen') {
            const r = await c.call('Tread', { fid: fid + 1, offset: 0n, count: 100 }) as M<'Rread'>;
            assert.notEqual(text(r.data), 'SECRET');
          }
          await c.call('Tclunk', { fid: fid + 1 });
        }
        // create through a walked fid while it may have turned into the symlink
        await c.call('Tlcreate', { fid, name: str(`planted${fid}`), flags: DOTL.WRONLY | DOTL.CREATE, mode: 0o644, gid: 0 });
        await c.call('Tclunk', { fid });
      }
      fid += 2;
      if (attempts > 5000) break;
    }
    stop = true;
    await Promise.all([swapper, guestSwapper]);
    assert.ok(swaps > 10, `the swapper ran (${swaps} swaps)`);
    assert.ok((seen.get('INSIDE') ?? 0) > 0, `some reads landed inside: ${JSON.stringify([...seen])}`);
  } finally { await j.done(); }
});
