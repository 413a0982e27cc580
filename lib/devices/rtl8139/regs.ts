// RTL8139C(L)/C+ register map and bits, named as in the Realtek datasheets and Linux's
// 8139too.c / 8139cp.c (both drivers' names kept where they differ).

// --- Register offsets (one 256-byte file behind both BARs) ---
export const IDR0 = 0x00; // MAC0: station address, 6 bytes
export const MAR0 = 0x08; // multicast hash filter, 8 bytes
export const TxStatus0 = 0x10; // TSD0..3 (normal mode)
export const StatsAddr = 0x10; // C+ mode: 64-bit address of the 64-byte stats dump
export const TxAddr0 = 0x20; // TSAD0..3 (normal mode)
export const TxRingAddr = 0x20; // C+ mode: 64-bit normal-priority TX ring
export const HiTxRingAddr = 0x28; // C+ mode: 64-bit high-priority TX ring
export const RxBuf = 0x30; // RBSTART
export const RxEarlyCnt = 0x34;
export const RxEarlyStatus = 0x36;
export const ChipCmd = 0x37;
export const RxBufPtr = 0x38; // CAPR
export const RxBufAddr = 0x3a; // CBR
export const IntrMask = 0x3c; // IMR
export const IntrStatus = 0x3e; // ISR
export const TxConfig = 0x40;
export const RxConfig = 0x44;
export const Timer = 0x48; // TCTR
export const RxMissed = 0x4c; // MPC
export const Cfg9346 = 0x50;
export const Config0 = 0x51;
export const Config1 = 0x52;
export const TimerInt = 0x54;
export const MediaStatus = 0x58; // MSR
export const Config3 = 0x59;
export const Config4 = 0x5a;
export const HltClk = 0x5b;
export const MultiIntr = 0x5c;
export const PCIRevisionID = 0x5e;
export const TxSummary = 0x60; // TSAD (status of all descriptors)
export const BasicModeCtrl = 0x62; // BMCR
export const BasicModeStatus = 0x64; // BMSR
export const NWayAdvert = 0x66; // ANAR
export const NWayLPAR = 0x68; // ANLPAR
export const NWayExpansion = 0x6a; // ANER
export const DisconnectCnt = 0x6c;
export const FalseCarrierCnt = 0x6e;
export const NWayTestReg = 0x70;
export const RxErrCnt = 0x72;
export const CSCR = 0x74;
export const TxDmaOkLowDesc = 0x82;
export const Config5 = 0xd8;
export const TxPoll = 0xd9;
export const RxMaxSize = 0xda;
export const CpCmd = 0xe0;
export const IntrMitigate = 0xe2;
export const RxRingAddr = 0xe4; // 64-bit C+ RX ring
export const TxThresh = 0xec;

export const REGS_SIZE = 0x100;

// --- ChipCmd ---
export const CmdReset = 0x10;
export const CmdRxEnb = 0x08;
export const CmdTxEnb = 0x04;
export const RxBufEmpty = 0x01; // BUFE

// --- IntrStatus / IntrMask ---
export const PCIErr = 0x8000;
export const PCSTimeout = 0x4000; // TimeOut: TCTR reached TimerInt (8139cp: TimerIntr)
export const LenChg = 0x2000;
export const SWInt = 0x0100;
export const TxEmpty = 0x0080; // C+: no TX descriptor available
export const RxFIFOOver = 0x0040;
export const RxUnderrun = 0x0020; // packet underrun / link change (8139cp: LinkChg)
export const RxOverflow = 0x0010; // RX ring overflow (8139cp: RxEmpty, no RX descriptor)
export const TxErr = 0x0008;
export const TxOK = 0x0004;
export const RxErr = 0x0002;
export const RxOK = 0x0001;
export const IntrStatusBits = 0xe1ff;

// --- TxStatus (TSD0..3) ---
export const TxCarrierLost = 0x8000_0000;
export const TxAborted = 0x4000_0000;
export const TxOutOfWindow = 0x2000_0000;
export const TxStatOK = 0x8000;
export const TxUnderrun = 0x4000;
export const TxHostOwns = 0x2000; // OWN: set by the chip once the data is in its FIFO
export const TxSizeMask = 0x1fff;
export const TxEarlyThreshMask = 0x003f_0000;
/** Largest frame a normal-mode TX descriptor may carry. */
export const TX_MAX_SIZE = 1792;

// --- TxConfig ---
export const TxClearAbt = 0x1; // CLRABT: retransmit after abort
export const TxLoopBack = 0x0006_0000; // LBK1:LBK0 = 11: internal loopback
export const TxHwVerMask = 0x7cc0_0000; // HWVERID bits 30..26, 23..22 (read-only)
/** HWVERID of the RTL8139C, which 8139too prints as "RTL-8139C". */
export const HWVER_RTL8139C = 0x7400_0000;
/** HWVERID of the RTL8139C+ (the 8139cp chip). */
export const HWVER_RTL8139CP = 0x7480_0000;

// --- RxConfig ---
export const AcceptErr = 0x20;
export const AcceptRunt = 0x10;
export const AcceptBroadcast = 0x08;
export const AcceptMulticast = 0x04;
export const AcceptMyPhys = 0x02;
export const AcceptAllPhys = 0x01;
/** Linux's RxNoWrap, the datasheet's WRAP: a packet may run past the end of the ring. */
export const RxCfgWrap = 0x80;
export const RxCfgLenShift = 11; // RBLEN: 8K << n (+16 bytes)

// --- RX packet header status (normal mode) ---
export const RxStatusOK = 0x0001;
export const RxBadAlign = 0x0002;
export const RxCRCErr = 0x0004;
export const RxTooLong = 0x0008;
export const RxRunt = 0x0010;
export const RxBadSymbol = 0x0020;
export const RxBroadcast = 0x2000;
export const RxPhysical = 0x4000;
export const RxMulticast = 0x8000;

// --- Cfg9346 ---
export const Cfg9346_Lock = 0x00;
export const Cfg9346_Unlock = 0xc0;
export const Cfg9346_EEM_MASK = 0xc0;
export const Cfg9346_EEM_AUTOLOAD = 0x40;
export const Cfg9346_EEM_PROGRAM = 0x80;
export const EE_CS = 0x08;
export const EE_SK = 0x04;
export const EE_DI = 0x02;
export const EE_DO = 0x01;

// --- MediaStatus ---
export const MSRLinkFail = 0x04; // LINKB: 1 = link down
export const MSRSpeed10 = 0x08;

// --- CSCR ---
export const CSCR_LinkOKBit = 0x0400;
export const CSCR_LinkChangeBit = 0x0800;

// --- MII (BMCR/BMSR/ANAR/ANLPAR/ANER) ---
export const BMCR_RESET = 0x8000;
export const BMCR_SPEED100 = 0x2000;
export const BMCR_ANENABLE = 0x1000;
export const BMCR_ANRESTART = 0x0200;
export const BMCR_FULLDPLX = 0x0100;
export const BMSR_100FULL = 0x4000;
export const BMSR_100HALF = 0x2000;
export const BMSR_10FULL = 0x1000;
export const BMSR_10HALF = 0x0800;
export const BMSR_ANEGCOMPLETE = 0x0020;
export const BMSR_ANEGCAPABLE = 0x0008;
export const BMSR_LSTATUS = 0x0004;
export const BMSR_ERCAP = 0x0001;

// --- C+ mode: CpCmd ---
export const RxVlanOn = 0x0040;
export const RxChkSum = 0x0020;
export const PCIDAC = 0x0010;
export const PCIMulRW = 0x0008;
export const CpRxOn = 0x0002;
export const CpTxOn = 0x0001;

// --- C+ mode: TxPoll ---
export const HighTxPoll = 0x80; // HPQ
export const NormalTxPoll = 0x40; // NPQ
export const ForceSWInt = 0x01; // FSWInt

// --- C+ mode: StatsAddr ---
export const DumpStats = 0x08;

// --- C+ mode descriptors: { opts1, opts2, addr lo, addr hi } ---
export const CP_DESC_SIZE = 16;
export const DescOwn = 0x8000_0000;
export const RingEnd = 0x4000_0000;
export const FirstFrag = 0x2000_0000;
export const LastFrag = 0x1000_0000;
export const LargeSend = 0x0800_0000;
export const MSSShift = 16;
export const MSSMask = 0x7ff;
export const TxError = 0x0080_0000;
export const IPCS = 0x0004_0000;
export const UDPCS = 0x0002_0000;
export const TCPCS = 0x0001_0000;
// TX completion status, written by the chip over the command bits above (8139cp's cp_tx).
export const TxFIFOUnder = 0x0200_0000;
export const TxOWC = 0x0040_0000;
export const TxLinkFail = 0x0020_0000;
export const TxMaxCol = 0x0010_0000;
export const TxColCntShift = 16;
export const TxColCntMask = 0xf;
/** Bits 27..16: on completion they hold status (TxError, TxFIFOUnder, TxOWC, ... TxColCnt), not the command. */
export const TxStatusBits = 0x0fff_0000;
export const CpTxLenMask = 0xffff;
export const TxVlanTag = 0x0002_0000; // opts2
// RX descriptor status
export const RxErrFrame = 0x0800_0000;
export const RxMcast = 0x0400_0000;
export const RxPhysMatch = 0x0200_0000;
export const RxBcast = 0x0100_0000;
export const RxErrFIFO = 0x0040_0000;
export const RxErrLong = 0x0020_0000;
export const RxError = 0x0010_0000;
export const RxErrRunt = 0x0008_0000;
export const RxErrCRC = 0x0004_0000;
export const PID1 = 0x0002_0000;
export const PID0 = 0x0001_0000;
export const RxProtoTCP = 1;
export const RxProtoUDP = 2;
export const RxProtoIP = 3;
export const IPFail = 0x8000;
export const UDPFail = 0x4000;
export const TCPFail = 0x2000;
export const CpRxLenMask = 0x1fff;
export const RxVlanTagged = 0x0001_0000; // opts2
