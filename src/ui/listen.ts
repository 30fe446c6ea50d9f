// The address the web view listens on: `HOST:PORT`, `[V6]:PORT` or `:PORT` (loopback), for
// `kbpf ui --listen` and the controller's `--ui-listen`.
import { isIP } from 'node:net';
import { InvalidError } from '../errors.js';

export const DEFAULT_UI_PORT = 8090;
export const DEFAULT_UI_LISTEN = `127.0.0.1:${DEFAULT_UI_PORT}`;

export interface ListenAddress {
  host: string;
  port: number;
}

export function parseListen(s: string, what = '--listen'): ListenAddress {
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(s);
  const port = Number(m?.[3]);
  if (!m || port > 65535)
    throw new InvalidError(`${what}: "${s}" is not HOST:PORT (e.g. ${DEFAULT_UI_LISTEN}, [::1]:${DEFAULT_UI_PORT})`);
  const host = m[1] ?? (m[2] || '127.0.0.1');
  if (m[1] !== undefined && isIP(host) !== 6) throw new InvalidError(`${what}: "${host}" is not an IPv6 address`);
  return { host, port };
}

/** Only this machine can reach it: 127.0.0.0/8, ::1, localhost. */
export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host) || host.endsWith('.localhost');
}
