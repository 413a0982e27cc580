// node-kvm exec's guest script: every caller-given string is quoted for the guest shell; the
// caller's directory and --rw directories are mounted at their own paths; root runs without
// setpriv, other users through it with their ids.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { execScript } from '../../lib/testing/exec-in-vm.js';

test('exec script: quoting, mounts at the same paths, ids', () => {
  const s = execScript({
    argv: ['sh', '-c', `echo "it's $HOME"; exit 3`], cwd: '/home/u/my dir', rw: ['/data/x'],
    uid: 1000, gid: 1001, env: { PATH: '/usr/bin:/bin', HOME: "/home/u/o'q" },
  });
  assert.match(s, /mount -t 9p -o [^ ]*cache=loose,ro nkvm-root \/host/);
  assert.match(s, /nkvm-rw0 \/newroot'\/home\/u\/my dir'/);
  assert.match(s, /nkvm-rw1 \/newroot'\/data\/x'/);
  assert.match(s, /setpriv --reuid=1000 --regid=1001 --clear-groups/);
  assert.ok(s.includes(`'echo "it'\\''s $HOME"; exit 3'`), 'the command is single-quoted, its quote escaped');
  assert.ok(s.includes(`'HOME=/home/u/o'\\''q'`));
  const root = execScript({ argv: ['true'], cwd: '/', rw: [], uid: 0, gid: 0, env: {} });
  assert.doesNotMatch(root, /setpriv/);
  // the script parses as shell
  execFileSync('sh', ['-n'], { input: s });
  execFileSync('sh', ['-n'], { input: root });
});
