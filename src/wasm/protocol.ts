// What the agent and a guest's process say to each other: the start request (stdin, JSON) and
// the reports (fd 3, one JSON line each; host.ts adds its own).
import type { GuestCapabilities } from '../package/package-spec.js';

export interface GuestStart {
  /** argv[0] of the guest */
  name: string;
  args: string[];
  /** the module, base64 */
  module: string;
  capabilities: GuestCapabilities;
  memoryMb: number;
  pinDir?: string;
  /** the agent's pid: the guest exits when its parent is another process */
  parentPid: number;
}

export type GuestEvent =
  | { t: 'waiting' }
  | { t: 'started' }
  | { t: 'exit'; code: number }
  | { t: 'trap'; message: string }
  | { t: 'fatal'; message: string };
