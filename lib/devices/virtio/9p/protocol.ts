// 9P2000.L as Linux's v9fs client speaks it (net/9p/protocol.c and include/net/9p/9p.h name
// the messages and fields; the layouts below are the protocol's, written out here once).
// Every message is size[4] type[1] tag[2] followed by its fields, little-endian. Strings are
// len[2] + bytes (not necessarily UTF-8, never NUL-terminated); a qid is type[1] version[4]
// path[8].

export type FieldType = 'u8' | 'u16' | 'u32' | 'u64' | 'str' | 'qid' | 'strs' | 'qids' | 'data';
export type FieldSpec = readonly [name: string, type: FieldType];
export type MessageSpec = readonly [type: number, ...fields: FieldSpec[]];

/** size[4] type[1] tag[2] */
export const HEADER_SIZE = 7;
/** Header of Rread / Twrite payloads as Linux counts it (P9_IOHDRSZ): the most a read or write
 *  message carries besides its data. */
export const IOHDRSZ = 24;
/** Bytes before the data of an Rread: header + count[4]. */
export const RREAD_HEADER = HEADER_SIZE + 4;
/** Bytes before the data of a Twrite: header + fid[4] offset[8] count[4]. */
export const TWRITE_HEADER = HEADER_SIZE + 16;
export const QID_SIZE = 13;
export const NOTAG = 0xffff;
export const NOFID = 0xffffffff;
/** Most names in one Twalk (MAXWELEM). */
export const MAXWELEM = 16;
export const VERSION_9P2000_L = '9P2000.L';

/** Every message of 9P2000.L (and the few 9P2000 ones Linux's .L client still sends). */
export const MESSAGES = {
  Tlerror: [6],
  Rlerror: [7, ['ecode', 'u32']],
  Tstatfs: [8, ['fid', 'u32']],
  Rstatfs: [9, ['fstype', 'u32'], ['bsize', 'u32'], ['blocks', 'u64'], ['bfree', 'u64'], ['bavail', 'u64'],
    ['files', 'u64'], ['ffree', 'u64'], ['fsid', 'u64'], ['namelen', 'u32']],
  Tlopen: [12, ['fid', 'u32'], ['flags', 'u32']],
  Rlopen: [13, ['qid', 'qid'], ['iounit', 'u32']],
  Tlcreate: [14, ['fid', 'u32'], ['name', 'str'], ['flags', 'u32'], ['mode', 'u32'], ['gid', 'u32']],
  Rlcreate: [15, ['qid', 'qid'], ['iounit', 'u32']],
  Tsymlink: [16, ['fid', 'u32'], ['name', 'str'], ['symtgt', 'str'], ['gid', 'u32']],
  Rsymlink: [17, ['qid', 'qid']],
  Tmknod: [18, ['dfid', 'u32'], ['name', 'str'], ['mode', 'u32'], ['major', 'u32'], ['minor', 'u32'], ['gid', 'u32']],
  Rmknod: [19, ['qid', 'qid']],
  Trename: [20, ['fid', 'u32'], ['dfid', 'u32'], ['name', 'str']],
  Rrename: [21],
  Treadlink: [22, ['fid', 'u32']],
  Rreadlink: [23, ['target', 'str']],
  Tgetattr: [24, ['fid', 'u32'], ['requestMask', 'u64']],
  Rgetattr: [25, ['valid', 'u64'], ['qid', 'qid'], ['mode', 'u32'], ['uid', 'u32'], ['gid', 'u32'], ['nlink', 'u64'],
    ['rdev', 'u64'], ['size', 'u64'], ['blksize', 'u64'], ['blocks', 'u64'], ['atimeSec', 'u64'], ['atimeNsec', 'u64'],
    ['mtimeSec', 'u64'], ['mtimeNsec', 'u64'], ['ctimeSec', 'u64'], ['ctimeNsec', 'u64'], ['btimeSec', 'u64'],
    ['btimeNsec', 'u64'], ['gen', 'u64'], ['dataVersion', 'u64']],
  Tsetattr: [26, ['fid', 'u32'], ['valid', 'u32'], ['mode', 'u32'], ['uid', 'u32'], ['gid', 'u32'], ['size', 'u64'],
    ['atimeSec', 'u64'], ['atimeNsec', 'u64'], ['mtimeSec', 'u64'], ['mtimeNsec', 'u64']],
  Rsetattr: [27],
  Txattrwalk: [30, ['fid', 'u32'], ['newfid', 'u32'], ['name', 'str']],
  Rxattrwalk: [31, ['size', 'u64']],
  Txattrcreate: [32, ['fid', 'u32'], ['name', 'str'], ['attrSize', 'u64'], ['flags', 'u32']],
  Rxattrcreate: [33],
  Treaddir: [40, ['fid', 'u32'], ['offset', 'u64'], ['count', 'u32']],
  Rreaddir: [41, ['data', 'data']],
  Tfsync: [50, ['fid', 'u32'], ['datasync', 'u32']],
  Rfsync: [51],
  Tlock: [52, ['fid', 'u32'], ['lockType', 'u8'], ['flags', 'u32'], ['start', 'u64'], ['length', 'u64'], ['procId', 'u32'],
    ['clientId', 'str']],
  Rlock: [53, ['status', 'u8']],
  Tgetlock: [54, ['fid', 'u32'], ['lockType', 'u8'], ['start', 'u64'], ['length', 'u64'], ['procId', 'u32'], ['clientId', 'str']],
  Rgetlock: [55, ['lockType', 'u8'], ['start', 'u64'], ['length', 'u64'], ['procId', 'u32'], ['clientId', 'str']],
  Tlink: [70, ['dfid', 'u32'], ['fid', 'u32'], ['name', 'str']],
  Rlink: [71],
  Tmkdir: [72, ['dfid', 'u32'], ['name', 'str'], ['mode', 'u32'], ['gid', 'u32']],
  Rmkdir: [73, ['qid', 'qid']],
  Trenameat: [74, ['olddirfid', 'u32'], ['oldname', 'str'], ['newdirfid', 'u32'], ['newname', 'str']],
  Rrenameat: [75],
  Tunlinkat: [76, ['dirfid', 'u32'], ['name', 'str'], ['flags', 'u32']],
  Runlinkat: [77],
  Tversion: [100, ['msize', 'u32'], ['version', 'str']],
  Rversion: [101, ['msize', 'u32'], ['version', 'str']],
  Tauth: [102, ['afid', 'u32'], ['uname', 'str'], ['aname', 'str'], ['nUname', 'u32']],
  Rauth: [103, ['aqid', 'qid']],
  Tattach: [104, ['fid', 'u32'], ['afid', 'u32'], ['uname', 'str'], ['aname', 'str'], ['nUname', 'u32']],
  Rattach: [105, ['qid', 'qid']],
  Tflush: [108, ['oldtag', 'u16']],
  Rflush: [109],
  Twalk: [110, ['fid', 'u32'], ['newfid', 'u32'], ['wnames', 'strs']],
  Rwalk: [111, ['wqids', 'qids']],
  Tread: [116, ['fid', 'u32'], ['offset', 'u64'], ['count', 'u32']],
  Rread: [117, ['data', 'data']],
  Twrite: [118, ['fid', 'u32'], ['offset', 'u64'], ['data', 'data']],
  Rwrite: [119, ['count', 'u32']],
  Tclunk: [120, ['fid', 'u32']],
  Rclunk: [121],
  Tremove: [122, ['fid', 'u32']],
  Rremove: [123],
} as const satisfies Record<string, MessageSpec>;

export type MessageName = keyof typeof MESSAGES;

export interface Qid {
  type: number;
  version: number;
  path: bigint;
}

type FieldValue<T extends FieldType> =
  T extends 'u8' | 'u16' | 'u32' ? number :
  T extends 'u64' ? bigint :
  T extends 'str' ? Uint8Array :
  T extends 'qid' ? Qid :
  T extends 'strs' ? Uint8Array[] :
  T extends 'qids' ? Qid[] :
  T extends 'data' ? Uint8Array : never;

type FieldsOf<S> = S extends readonly [number, ...infer F] ? F : never;
type Fields<F> = F extends readonly [] ? unknown :
  F extends readonly [readonly [infer N extends string, infer T extends FieldType], ...infer R]
    ? { [K in N]: FieldValue<T> } & Fields<R> : unknown;

/** A message as the codec decodes and encodes it: its name, tag and fields. */
export type Message<N extends MessageName = MessageName> = N extends MessageName
  ? { op: N; tag: number } & Fields<FieldsOf<(typeof MESSAGES)[N]>> : never;

/** message type number -> name */
export const MESSAGE_NAMES: ReadonlyMap<number, MessageName> = new Map(
  (Object.keys(MESSAGES) as MessageName[]).map((n) => [MESSAGES[n][0], n]));

// qid.type bits
export const QTDIR = 0x80;
export const QTAPPEND = 0x40;
export const QTEXCL = 0x20;
export const QTSYMLINK = 0x02;
export const QTFILE = 0x00;

// Tlopen / Tlcreate flags (P9_DOTL_*): Linux's open flags as the generic ABI numbers them
export const DOTL = {
  RDONLY: 0o0, WRONLY: 0o1, RDWR: 0o2, ACCMODE: 0o3, CREATE: 0o100, EXCL: 0o200, NOCTTY: 0o400, TRUNC: 0o1000,
  APPEND: 0o2000, NONBLOCK: 0o4000, DSYNC: 0o10000, FASYNC: 0o20000, DIRECT: 0o40000, LARGEFILE: 0o100000,
  DIRECTORY: 0o200000, NOFOLLOW: 0o400000, NOATIME: 0o1000000, CLOEXEC: 0o2000000, SYNC: 0o4000000,
} as const;

// Tgetattr request_mask / Rgetattr valid
export const GETATTR = {
  MODE: 0x1n, NLINK: 0x2n, UID: 0x4n, GID: 0x8n, RDEV: 0x10n, ATIME: 0x20n, MTIME: 0x40n, CTIME: 0x80n, INO: 0x100n,
  SIZE: 0x200n, BLOCKS: 0x400n, BTIME: 0x800n, GEN: 0x1000n, DATA_VERSION: 0x2000n, BASIC: 0x7ffn, ALL: 0x3fffn,
} as const;

// Tsetattr valid
export const SETATTR = {
  MODE: 0x1, UID: 0x2, GID: 0x4, SIZE: 0x8, ATIME: 0x10, MTIME: 0x20, CTIME: 0x40, ATIME_SET: 0x80, MTIME_SET: 0x100,
} as const;

// Tlock
export const LOCK_TYPE = { RDLCK: 0, WRLCK: 1, UNLCK: 2 } as const;
export const LOCK_STATUS = { SUCCESS: 0, BLOCKED: 1, ERROR: 2, GRACE: 3 } as const;

/** Tunlinkat flags: remove a directory (Linux's AT_REMOVEDIR value in the protocol). */
export const P9_AT_REMOVEDIR = 0x200;

// File type bits of a mode (S_IFMT), as 9P carries them (Linux's values)
export const S_IFMT = 0o170000;
export const S_IFSOCK = 0o140000;
export const S_IFLNK = 0o120000;
export const S_IFREG = 0o100000;
export const S_IFBLK = 0o060000;
export const S_IFDIR = 0o040000;
export const S_IFCHR = 0o020000;
export const S_IFIFO = 0o010000;
