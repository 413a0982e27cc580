// Run by net-user.test.ts as an unprivileged user: start the `user` backend, take a DHCP lease.
import { userNet } from '../../lib/net/user.js';

const b = userNet();
const timer = setTimeout(() => { console.error('no DHCP offer'); process.exit(2); }, 20_000);
try {
  await b.ready;
  const mac = [0x52, 0x54, 0x00, 0x12, 0x34, 0x57];
  const offer = new Promise<Uint8Array>((resolve) => b.onReceive((f) => { if (f[23] === 17 && f[37] === 68) resolve(f); }));
  const bootp = new Uint8Array(244);
  bootp.set([1, 1, 6], 0);
  bootp.set(mac, 28);
  bootp.set([0x63, 0x82, 0x53, 0x63, 53, 1, 1, 255], 236);
  const frame = new Uint8Array(14 + 20 + 8 + bootp.length);
  frame.fill(0xff, 0, 6);
  frame.set(mac, 6);
  frame.set([0x08, 0x00, 0x45, 0], 12);
  const v = new DataView(frame.buffer);
  v.setUint16(16, 20 + 8 + bootp.length);
  frame[22] = 64;
  frame[23] = 17;
  frame.fill(0xff, 30, 34);
  let sum = 0;
  for (let i = 14; i < 34; i += 2) sum += v.getUint16(i);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  v.setUint16(24, ~sum & 0xffff);
  v.setUint16(34, 68);
  v.setUint16(36, 67);
  v.setUint16(38, 8 + bootp.length);
  frame.set(bootp, 42);
  b.send(frame);
  const f = await offer;
  console.log(`lease ${[...f.subarray(58, 62)].join('.')} as uid ${process.getuid?.()}`);
} finally {
  clearTimeout(timer);
  b.close();
  await b.exited;
}
