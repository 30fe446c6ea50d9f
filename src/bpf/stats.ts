// The kernel counts how often and how long programs run only while BPF stats are enabled:
// system-wide by sysctl kernel.bpf_stats_enabled=1, or for as long as someone holds the fd of
// BPF_ENABLE_STATS(BPF_STATS_RUN_TIME). This is that fd as a disposable.
import { BpfError } from './errors.js';
import { libbpf } from './ffi/libbpf.js';
import { libc } from './ffi/libc.js';

const BPF_STATS_RUN_TIME = 0;

export class RunTimeStats implements Disposable {
  #fd: number;

  private constructor(fd: number) {
    this.#fd = fd;
  }

  /** Enables run counts and run times of every program until close(). */
  static enable(): RunTimeStats {
    const fd = libbpf.enableStats(BPF_STATS_RUN_TIME);
    if (fd < 0) throw new BpfError('enable', 'BPF run-time stats', -fd);
    return new RunTimeStats(fd);
  }

  get enabled(): boolean {
    return this.#fd >= 0;
  }

  close(): void {
    if (this.#fd < 0) return;
    libc.close(this.#fd);
    this.#fd = -1;
  }

  [Symbol.dispose](): void {
    this.close();
  }
}
