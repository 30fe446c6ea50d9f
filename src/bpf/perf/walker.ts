// The walker of a BPF_MAP_TYPE_PERF_EVENT_ARRAY: libbpf's perf_buffer opens and maps the
// per-CPU rings, and this walks their records in JavaScript (the RecordSource of a
// PerfBufferReader; see reader.ts for the rest).
//
// perf_buffer__new opens one BPF-output perf event per online CPU, maps `pagesPerCpu` pages of
// ring for each (after the perf_event_mmap_page that holds data_head and data_tail), and stores
// the events in the map, so bpf_perf_event_output(ctx, &map, BPF_F_CURRENT_CPU, ...) lands in the
// ring of the CPU the program runs on. libbpf gathers the per-CPU fds in its own epoll fd; that
// one fd is what the queue hands to the process-wide poller.
//
// Each ring is read as perf does: data_head is loaded with an atomic load, records from our
// tail up to it are walked — each a perf_event_header { u32 type; u16 misc; u16 size } then its
// body; PERF_RECORD_SAMPLE carries { u32 size; data[size] }, PERF_RECORD_LOST { u64 id; u64 lost }
// — a record that wraps around the end of the ring is copied out first, and data_tail is
// published with an atomic store once the walk stops. The walk stops after `max` records, so a
// slow consumer leaves records in the kernel's rings (they then overflow and count lost ones).
//
// Lost records are the kernel's own count: when a CPU's ring is full the kernel counts what it
// could not write and, once room is back, writes a PERF_RECORD_LOST with that count (so the lost
// count grows only after the reader has made room and the producer has written once more).
import { readFileSync } from 'node:fs';
import { constants } from 'node:os';
import { BpfError } from '../errors.js';
import { koffi, lastErrno, type Pointer } from '../ffi/koffi.js';
import { libbpf } from '../ffi/libbpf.js';
import { libc } from '../ffi/libc.js';
import type { BpfMap } from '../map.js';
import type { RecordDecoder } from '../records/decode.js';
import type { RecordCounts, RecordSource } from '../records/source.js';

const PERF_RECORD_LOST = 2;
const PERF_RECORD_SAMPLE = 9;
/** offsets in struct perf_event_mmap_page */
const DATA_HEAD = 1024;
const DATA_OFFSET = 1040;
const DATA_SIZE = 1048;
const HEADER_SIZE = 8;

/** One CPU's mapped ring. */
interface CpuRing {
  cpu: number;
  /** [data_head, data_tail] */
  pos: BigUint64Array;
  data: Uint8Array;
  view: DataView;
  mask: number;
  /** our tail: what we have read up to (published as data_tail) */
  tail: number;
}

export class PerfWalker<T> implements RecordSource<T> {
  readonly map: BpfMap;
  readonly description: string;
  readonly #decoder: RecordDecoder;
  #pb: Pointer | null;
  #mapFd: number;
  #epollFd: number;
  #rings: CpuRing[];
  /** the ring the next read starts with: reads rotate over the CPUs */
  #next = 0;
  #closed = false;
  #scratch = new Uint8Array(256);
  #scratchView = new DataView(this.#scratch.buffer);

  /** Opens the per-CPU perf events of `map` (on its own duplicate of the map's fd) and maps them. */
  constructor(map: BpfMap, pagesPerCpu: number, decoder: RecordDecoder) {
    assertPerfArray(map, pagesPerCpu);
    this.map = map;
    this.description = `perf buffer ${map.description}`;
    this.#decoder = decoder;
    // libbpf keeps the fd to remove its entries on free: give it our own duplicate, so closing the
    // map's object first cannot make perf_buffer__free touch a stale (possibly reused) fd number.
    const fd = libc.dup(map.fd);
    if (fd < 0) throw new BpfError('open perf buffer on', map.description, lastErrno() || constants.errno.EBADF);
    const pb = libbpf.perfBufferNew(fd, pagesPerCpu, null, null, null, null);
    if (!pb) {
      const errno = lastErrno() || constants.errno.EINVAL;
      libc.close(fd);
      throw new BpfError('open perf buffer on', map.description, errno);
    }
    this.#pb = pb;
    this.#mapFd = fd;
    try {
      this.#epollFd = libbpf.perfBufferEpollFd(pb);
      this.#rings = this.mapRings(pb);
    } catch (e) {
      this.#rings = [];
      this.close();
      throw e;
    }
  }

  private mapRings(pb: Pointer): CpuRing[] {
    const count = libbpf.perfBufferBufferCnt(pb);
    const cpus = bufferCpus(this.map.maxEntries);
    const rings: CpuRing[] = [];
    for (let i = 0; i < count; i++) {
      const base: [Pointer] = [null];
      const size: [number] = [0];
      const err = libbpf.perfBufferBuffer(pb, i, base, size);
      if (err < 0) throw new BpfError('map the rings of', this.description, -err);
      const page = new DataView(koffi.view(base[0], DATA_SIZE + 8) as ArrayBuffer);
      const dataOffset = Number(page.getBigUint64(DATA_OFFSET, true));
      const dataSize = Number(page.getBigUint64(DATA_SIZE, true));
      if (dataSize === 0 || (dataSize & (dataSize - 1)) !== 0 || dataOffset < DATA_SIZE + 8) {
        throw new BpfError('map the rings of', this.description, constants.errno.EINVAL, {
          hint: `ring ${i} has data_offset ${dataOffset}, data_size ${dataSize}`,
        });
      }
      const all = koffi.view(base[0], dataOffset + dataSize) as ArrayBuffer;
      const pos = new BigUint64Array(all, DATA_HEAD, 2);
      rings.push({
        cpu: cpus.length === count ? cpus[i]! : i,
        pos,
        data: new Uint8Array(all, dataOffset, dataSize),
        view: new DataView(all, dataOffset, dataSize),
        mask: dataSize - 1,
        tail: Number(Atomics.load(pos, 1)),
      });
    }
    return rings;
  }

  /** libbpf's epoll fd over the per-CPU perf events. */
  get fd(): number {
    return this.#epollFd;
  }

  /** Number of per-CPU rings. */
  get rings(): number {
    return this.#rings.length;
  }

  ready(): boolean {
    for (const r of this.#rings) if (Number(Atomics.load(r.pos, 0)) > r.tail) return true;
    return false;
  }

  read(deliver: (record: T) => void, max: number, counts: RecordCounts): number {
    const rings = this.#rings;
    const count = rings.length;
    let n = 0;
    for (let k = 0; k < count && n < max; k++) {
      n += this.readRing(rings[(this.#next + k) % count]!, deliver, max - n, counts);
      if (this.#closed) return n;
    }
    if (count > 0) this.#next = (this.#next + 1) % count;
    return n;
  }

  private readRing(ring: CpuRing, deliver: (record: T) => void, max: number, counts: RecordCounts): number {
    const head = Number(Atomics.load(ring.pos, 0));
    const decoder = this.#decoder;
    const size = ring.mask + 1;
    let tail = ring.tail;
    let n = 0;
    try {
      while (tail < head && n < max) {
        const off = tail & ring.mask;
        let view = ring.view;
        let bytes = ring.data;
        let at = off;
        const type = view.getUint32(off, true);
        const len = view.getUint16(off + 6, true);
        if (len < HEADER_SIZE) {
          // Cannot happen with a sane kernel; skip what is there rather than loop on it.
          tail = head;
          break;
        }
        if (off + len > size) {
          // wraps around the end of the ring: copy it out
          if (this.#scratch.length < len) {
            this.#scratch = new Uint8Array(len);
            this.#scratchView = new DataView(this.#scratch.buffer);
          }
          this.#scratch.set(ring.data.subarray(off, size), 0);
          this.#scratch.set(ring.data.subarray(0, len - (size - off)), size - off);
          view = this.#scratchView;
          bytes = this.#scratch;
          at = 0;
        }
        tail += len;
        if (type === PERF_RECORD_SAMPLE) {
          const dataLen = view.getUint32(at + HEADER_SIZE, true);
          let value: unknown;
          try {
            value = decoder.decode(bytes, at + HEADER_SIZE + 4, dataLen);
          } catch {
            counts.drops++;
            continue;
          }
          n++;
          counts.records++;
          counts.bytes += dataLen;
          deliver(value as T);
          if (this.#closed) return n; // closed by the consumer: the rings are unmapped
        } else if (type === PERF_RECORD_LOST) {
          const lost = view.getUint32(at + 16, true) + view.getUint32(at + 20, true) * 4294967296;
          counts.addLost(ring.cpu, lost);
        }
      }
    } finally {
      if (!this.#closed && tail !== ring.tail) {
        Atomics.store(ring.pos, 1, BigInt(tail));
        ring.tail = tail;
      }
    }
    return n;
  }

  /** Frees the perf buffer (its perf events are closed) and the map fd's duplicate. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    // Drop every view first: touching one after perf_buffer__free unmaps it would crash.
    this.#rings = [];
    this.#scratch = new Uint8Array(0);
    if (this.#pb) libbpf.perfBufferFree(this.#pb);
    this.#pb = null;
    if (this.#mapFd >= 0) libc.close(this.#mapFd);
    this.#mapFd = -1;
    this.#epollFd = -1;
  }
}

/** Throws unless `map` is a perf event array and pagesPerCpu a power of two. */
export function assertPerfArray(map: BpfMap, pagesPerCpu: number): void {
  if (map.type !== 'perf_event_array') {
    throw new BpfError('read perf buffer', map.description, constants.errno.EINVAL, {
      hint: `it is a ${map.type} map, not a perf_event_array`,
    });
  }
  if (!Number.isInteger(pagesPerCpu) || pagesPerCpu < 1 || (pagesPerCpu & (pagesPerCpu - 1)) !== 0) {
    throw new BpfError('read perf buffer', map.description, constants.errno.EINVAL, {
      hint: `pagesPerCpu must be a power of two, got ${pagesPerCpu}`,
    });
  }
}

/**
 * The CPU of each of libbpf's buffers: it opens one per online CPU below the map's size, in
 * order (an empty list when the online CPUs cannot be read: buffers are then named by index).
 */
function bufferCpus(maxEntries: number): number[] {
  let text: string;
  try {
    text = readFileSync('/sys/devices/system/cpu/online', 'utf8');
  } catch {
    return [];
  }
  const cpus: number[] = [];
  for (const part of text.trim().split(',')) {
    const [a, b] = part.split('-').map(Number);
    if (a === undefined || Number.isNaN(a)) continue;
    for (let c = a; c <= (b ?? a); c++) if (!maxEntries || c < maxEntries) cpus.push(c);
  }
  return cpus;
}
