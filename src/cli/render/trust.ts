// Keys and signatures (kbpf key generate, sign, verify, and the signers kbpf inspect shows).
import type { SignResult, VerifyResult } from '../../package/trust/signing.js';
import { escapeControl } from './escape.js';
import { data, isData, type TextFormat } from './output.js';
import { cell } from './values.js';

export interface GeneratedKey {
  privateKey: string;
  publicKey: string;
  keyId: string;
}

/** kbpf key generate */
export function renderGeneratedKey(format: TextFormat, k: GeneratedKey): string {
  if (isData(format)) return data(format, k);
  return `private key: ${cell(k.privateKey)} (mode 0600: keep it secret)\npublic key:  ${cell(k.publicKey)}\nkey id:      ${k.keyId}\n`;
}

/** kbpf sign */
export function renderSigned(format: TextFormat, image: string, r: SignResult): string {
  if (isData(format)) return data(format, { image, ...r });
  return `signed ${cell(image)} (${r.digest})\nkey: ${r.keyId}\nsignature: ${cell(r.signatureReference)} (${r.signatures} in all)\n`;
}

/** kbpf verify */
export function renderVerified(format: TextFormat, image: string, v: VerifyResult): string {
  if (isData(format)) return data(format, { image, ...v });
  const lines = [`verified ${cell(image)} (${v.digest})`];
  for (const s of v.signers) lines.push(`signed by ${cell(s.name)} (${s.keyId})`);
  for (const p of v.problems) lines.push(`warning: ${escapeControl(p)}`);
  return `${lines.join('\n')}\n`;
}
