// Reader for KVM's binary statistics file (KVM_GET_STATS_FD; Documentation/virt/kvm/api.rst
// "KVM_GET_STATS_FD"): a header, an id string, descriptors, then the values.
import { readSync } from 'node:fs';
import { native } from '../native.js';

/** struct kvm_stats_header. */
export interface KvmStatsHeader {
  /** Reserved flags. */
  flags: number;
  /** Bytes of each descriptor's name. */
  nameSize: number;
  /** Number of descriptors. */
  numDesc: number;
  /** Offset of the id string. */
  idOffset: number;
  /** Offset of the descriptors. */
  descOffset: number;
  /** Offset of the values. */
  dataOffset: number;
  /** The id string ('kvm-PID' or 'kvm-PID/vcpu-N'). */
  id: string;
}

/** The statistics KVM keeps for a VM or vCPU. */
export interface KvmStats {
  /** The file's header. */
  header: KvmStatsHeader;
  /** Each statistic by name; histograms have several values. */
  values: Map<string, bigint[]>;
}

function pread(fd: number, length: number, position: number): Uint8Array {
  const b = new Uint8Array(length);
  let got = 0;
  while (got < length) {
    const n = readSync(fd, b, got, length - got, position + got);
    if (n === 0) break;
    got += n;
  }
  return b.subarray(0, got);
}

/** Read KVM's binary statistics from a KVM_GET_STATS_FD file (`vm.getStatsFd()`, `vcpu.getStatsFd()`). */
export function readKvmStats(fd: number): KvmStats {
  const L = native().layout.kvm_stats;
  const hb = pread(fd, L.header_size!, 0);
  const hv = new DataView(hb.buffer, hb.byteOffset, hb.byteLength);
  const header: KvmStatsHeader = {
    flags: hv.getUint32(L.header_flags!, true),
    nameSize: hv.getUint32(L.header_name_size!, true),
    numDesc: hv.getUint32(L.header_num_desc!, true),
    idOffset: hv.getUint32(L.header_id_offset!, true),
    descOffset: hv.getUint32(L.header_desc_offset!, true),
    dataOffset: hv.getUint32(L.header_data_offset!, true),
    id: '',
  };
  const idb = pread(fd, header.nameSize, header.idOffset);
  header.id = Buffer.from(idb).toString('latin1').replace(/\0.*$/s, '');
  const descSize = L.desc_size! + header.nameSize;
  const db = pread(fd, descSize * header.numDesc, header.descOffset);
  const dv = new DataView(db.buffer, db.byteOffset, db.byteLength);
  const values = new Map<string, bigint[]>();
  let dataEnd = 0;
  const descs: Array<{ name: string; size: number; offset: number }> = [];
  for (let i = 0; i < header.numDesc; i++) {
    const at = i * descSize;
    const size = dv.getUint16(at + L.desc_size_field!, true);
    const offset = dv.getUint32(at + L.desc_offset!, true);
    const nameBytes = db.subarray(at + L.desc_name!, at + L.desc_name! + header.nameSize);
    const name = Buffer.from(nameBytes).toString('latin1').replace(/\0.*$/s, '');
    descs.push({ name, size, offset });
    dataEnd = Math.max(dataEnd, offset + size * 8);
  }
  const data = pread(fd, dataEnd, header.dataOffset);
  const vv = new DataView(data.buffer, data.byteOffset, data.byteLength);
  for (const d of descs) {
    const vals: bigint[] = [];
    for (let j = 0; j < d.size; j++) {
      const p = d.offset + j * 8;
      if (p + 8 <= data.length) vals.push(vv.getBigUint64(p, true));
    }
    values.set(d.name, vals);
  }
  return { header, values };
}
