// A copy of an interface's packets: an AF_PACKET raw socket bound to one interface (Node has no
// AF_PACKET), read without blocking when the shared poller says it is readable. Observe-only:
// the packets go on to the stack as they would anyway. Needs CAP_NET_RAW.
import { BpfError } from './errors.js';
import { lastErrno } from './ffi/koffi.js';
import { libc, netlibc } from './ffi/libc.js';
import { poller, type Watch } from './poller.js';

const AF_PACKET = 17;
const SOCK_RAW = 3;
const SOCK_NONBLOCK = 0o4000;
const SOCK_CLOEXEC = 0o2000000;
const ETH_P_ALL_BE = 0x0300; // htons(ETH_P_ALL)
const MSG_DONTWAIT = 0x40;
const EAGAIN = 11;
const SOCKADDR_LL = 20;
/** sll_pkttype of packets the host sends */
export const PACKET_OUTGOING = 4;

export interface CapturedPacket {
  data: Uint8Array;
  /** PACKET_HOST 0, BROADCAST 1, MULTICAST 2, OTHERHOST 3, OUTGOING 4 */
  pktType: number;
}

export class PacketSocket {
  readonly #buf = new Uint8Array(65536);
  readonly #addr = new Uint8Array(SOCKADDR_LL);
  readonly #addrLen = new Uint32Array(1);
  #watch?: Watch;
  #closed = false;

  private constructor(
    readonly fd: number,
    readonly iface: string,
    readonly ifindex: number,
  ) {}

  static open(iface: string): PacketSocket {
    const ifindex = netlibc.ifNametoindex(iface);
    if (!ifindex) throw new BpfError('open packet socket on', `interface ${iface}`, lastErrno() || 19);
    const fd = netlibc.socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, ETH_P_ALL_BE);
    if (fd < 0)
      throw new BpfError('open packet socket on', `interface ${iface}`, lastErrno(), { hint: 'needs CAP_NET_RAW' });
    const sll = Buffer.alloc(SOCKADDR_LL);
    sll.writeUInt16LE(AF_PACKET, 0);
    sll.writeUInt16LE(ETH_P_ALL_BE, 2);
    sll.writeInt32LE(ifindex, 4);
    if (netlibc.bind(fd, sll, SOCKADDR_LL) < 0) {
      const errno = lastErrno();
      libc.close(fd);
      throw new BpfError('bind packet socket to', `interface ${iface}`, errno);
    }
    return new PacketSocket(fd, iface, ifindex);
  }

  /** The next packet waiting, or undefined when none is. */
  read(): CapturedPacket | undefined {
    this.#addrLen[0] = SOCKADDR_LL;
    const n = netlibc.recvfrom(this.fd, this.#buf, this.#buf.length, MSG_DONTWAIT, this.#addr, this.#addrLen);
    if (n < 0) {
      const errno = lastErrno();
      if (errno === EAGAIN) return undefined;
      throw new BpfError('read packet from', `interface ${this.iface}`, errno);
    }
    return { data: this.#buf.slice(0, n), pktType: this.#addr[10]! };
  }

  /** Calls `onPacket` for every packet, as they come (until close). */
  onPackets(onPacket: (p: CapturedPacket) => void): void {
    const w = poller().watch(
      this.fd,
      () => {
        if (this.#closed) return;
        for (let p = this.read(); p; p = this.read()) onPacket(p);
        w.arm();
      },
      { description: `packet socket on ${this.iface}` },
    );
    this.#watch = w;
    w.arm();
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#watch?.close();
    libc.close(this.fd);
  }
}
