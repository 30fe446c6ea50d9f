// Versions of the CLI and of the agent it talks to (kbpf version).
import { data, isData, type TextFormat } from './output.js';
import { cell } from './values.js';

export interface Versions {
  client: { version: string; node: string };
  agent: { version: string; api: string } | { error: string };
}

export function renderVersions(format: TextFormat, v: Versions, socket: string): string {
  if (isData(format)) return data(format, v);
  const agent =
    'error' in v.agent
      ? `agent: not reachable: ${cell(v.agent.error)}\n`
      : `agent: ${cell(v.agent.version)} (API ${cell(v.agent.api)}, ${cell(socket)})\n`;
  return `client: ${v.client.version} (node ${v.client.node})\n${agent}`;
}
