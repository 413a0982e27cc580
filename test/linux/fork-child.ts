// The second process of fork.test.ts: fork a template from the file named in argv[2], read the
// file its setup wrote, measure the fork's clock against the host's, and print one JSON line.
import { L2Switch } from '../../lib/net/switch.js';
import { loadTemplate } from '../../lib/testing/template.js';

const tpl = await loadTemplate(process.argv[2]!);
const sw = new L2Switch();
try {
  await using vm = await tpl.fork({ net: [{ backend: sw.port(), ip: '10.0.8.1/24' }] });
  const text = (await vm.readFile('/root/setup.txt')).toString();
  const t0 = Date.now();
  const r = await vm.execOk('adjtimex');
  const t1 = Date.now();
  const sec = Number(/time\.tv_sec:\s+(\d+)/.exec(r.stdout)?.[1]);
  const usec = Number(/time\.tv_usec:\s+(\d+)/.exec(r.stdout)?.[1]);
  const mac = (await vm.execOk('cat /sys/class/net/eth0/address')).stdout.trim();
  process.stdout.write(`${JSON.stringify({ text, skewMs: sec * 1000 + usec / 1000 - (t0 + t1) / 2, mac, channel: vm.channel })}\n`);
} finally {
  await tpl.close();
  sw.close();
}
