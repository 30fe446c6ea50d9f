// Leader election with a coordination.k8s.io/v1 Lease: one controller replica reconciles; the
// others wait until the holder stops renewing (leaseDurationSeconds) and then take it over.
import type { V1Lease } from '@kubernetes/client-node';
import { type Kube, statusCode } from '../kube.js';

export interface LeaderOptions {
  kube: Kube;
  namespace: string;
  name: string;
  identity: string;
  leaseDurationSeconds?: number;
  onStarted: () => void;
  onStopped: () => void;
  log?: (msg: string) => void;
}

export class LeaderElector {
  #timer?: NodeJS.Timeout;
  #leading = false;
  #stopped = false;
  /** when the lease was last acquired or renewed (ms) */
  #renewedAt = 0;

  constructor(readonly opts: LeaderOptions) {}

  get leading(): boolean {
    return this.#leading;
  }

  start(): void {
    const tick = async (): Promise<void> => {
      if (this.#stopped) return;
      try {
        const held = await this.tryAcquireOrRenew();
        if (held && !this.#leading) {
          this.#leading = true;
          this.opts.log?.(`leading (lease ${this.opts.namespace}/${this.opts.name})`);
          this.opts.onStarted();
        } else if (!held && this.#leading) {
          this.#leading = false;
          this.opts.log?.('lost the lease');
          this.opts.onStopped();
        }
        if (held) this.#renewedAt = Date.now();
      } catch (e) {
        this.opts.log?.(`lease: ${(e as Error).message}`);
        // a leader that cannot renew stops leading before its lease can expire: another replica
        // may take it over then, and two leaders must never reconcile at once
        if (this.#leading && Date.now() - this.#renewedAt >= this.renewDeadlineMs) {
          this.#leading = false;
          this.opts.log?.(`could not renew the lease for ${this.renewDeadlineMs} ms: no longer leading`);
          this.opts.onStopped();
        }
      }
      if (!this.#stopped) this.#timer = setTimeout(() => void tick(), (this.duration * 1000) / 3);
    };
    void tick();
  }

  /** Gives the lease up (so another replica takes over at once). */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    if (!this.#leading) return;
    this.#leading = false;
    try {
      const lease = await this.read();
      if (lease?.spec?.holderIdentity === this.opts.identity) {
        lease.spec.holderIdentity = undefined;
        await this.opts.kube.coordination.replaceNamespacedLease({
          name: this.opts.name,
          namespace: this.opts.namespace,
          body: lease,
        });
      }
    } catch {
      /* it expires by itself */
    }
  }

  /** A leader that has not renewed for this long stops leading: two thirds of the lease (client-go's 10 s of 15 s). */
  private get renewDeadlineMs(): number {
    return (this.duration * 1000 * 2) / 3;
  }

  private get duration(): number {
    return this.opts.leaseDurationSeconds ?? 15;
  }

  private async read(): Promise<V1Lease | undefined> {
    try {
      return await this.opts.kube.coordination.readNamespacedLease({
        name: this.opts.name,
        namespace: this.opts.namespace,
      });
    } catch (e) {
      if (statusCode(e) === 404) return undefined;
      throw e;
    }
  }

  private async tryAcquireOrRenew(): Promise<boolean> {
    const { kube, namespace, name, identity } = this.opts;
    const now = new Date();
    const lease = await this.read();
    if (!lease) {
      try {
        await kube.coordination.createNamespacedLease({
          namespace,
          body: {
            apiVersion: 'coordination.k8s.io/v1',
            kind: 'Lease',
            metadata: { name, namespace },
            spec: {
              holderIdentity: identity,
              leaseDurationSeconds: this.duration,
              acquireTime: now,
              renewTime: now,
              leaseTransitions: 0,
            },
          },
        });
        return true;
      } catch (e) {
        if (statusCode(e) === 409) return false;
        throw e;
      }
    }
    const spec = lease.spec ?? {};
    const renew = spec.renewTime ? new Date(spec.renewTime).getTime() : 0;
    const expired = !spec.holderIdentity || renew + (spec.leaseDurationSeconds ?? this.duration) * 1000 < now.getTime();
    if (spec.holderIdentity !== identity && !expired) return false;
    if (spec.holderIdentity !== identity) {
      spec.leaseTransitions = (spec.leaseTransitions ?? 0) + 1;
      spec.acquireTime = now;
    }
    spec.holderIdentity = identity;
    spec.renewTime = now;
    spec.leaseDurationSeconds = this.duration;
    lease.spec = spec;
    try {
      await kube.coordination.replaceNamespacedLease({ name, namespace, body: lease });
      return true;
    } catch (e) {
      if (statusCode(e) === 409) return false;
      throw e;
    }
  }
}
