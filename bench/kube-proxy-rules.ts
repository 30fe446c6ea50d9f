// Rules as kube-proxy writes them, for the service-lb benchmark's baselines: its iptables mode
// (KUBE-SERVICES -> KUBE-SVC-* with `statistic mode random` -> KUBE-SEP-* DNAT, as
// pkg/proxy/iptables writes them, masquerade marking included) and its nftables mode (a
// `service-ips` verdict map from daddr . proto . port to the service chain, `numgen random mod N
// vmap` to the endpoint chains, as pkg/proxy/nftables writes them).
import { createHash } from 'node:crypto';

export interface BenchService {
  name: string;
  vip: string;
  port: number;
  protocol: 'tcp' | 'udp';
  targetPort: number;
  endpoints: string[];
}

/** kube-proxy's chain name suffix: the first 16 characters of base32(sha256(...)). */
function hashOf(s: string): string {
  const h = createHash('sha256').update(s).digest();
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = 0;
  let value = 0;
  let out = '';
  for (const byte of h) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5 && out.length < 16) {
      out += alphabet[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  return out;
}

/** An iptables-restore input for the nat table. clusterCidr: sources inside it are not masqueraded. */
export function iptablesRules(services: BenchService[], clusterCidr: string): string {
  const chains: string[] = [
    ':KUBE-SERVICES - [0:0]',
    ':KUBE-MARK-MASQ - [0:0]',
    ':KUBE-POSTROUTING - [0:0]',
    ':KUBE-NODEPORTS - [0:0]',
  ];
  const sepRules: string[] = [];
  const rules: string[] = [
    '-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
    '-A OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
    '-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING',
    '-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000',
    '-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN',
    '-A KUBE-POSTROUTING -j MARK --xor-mark 0x4000',
    '-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully',
  ];
  for (const s of services) {
    const portName = `${s.name}:${s.protocol}-${s.port}`;
    const svc = `KUBE-SVC-${hashOf(`${portName}${s.protocol}`)}`;
    chains.push(`:${svc} - [0:0]`);
    rules.push(
      `-A KUBE-SERVICES -d ${s.vip}/32 -p ${s.protocol} -m comment --comment "${portName} cluster IP" -m ${s.protocol} --dport ${s.port} -j ${svc}`,
      `-A ${svc} ! -s ${clusterCidr} -d ${s.vip}/32 -p ${s.protocol} -m comment --comment "${portName} cluster IP" -m ${s.protocol} --dport ${s.port} -j KUBE-MARK-MASQ`,
    );
    s.endpoints.forEach((ep, i) => {
      const sep = `KUBE-SEP-${hashOf(`${portName}${s.protocol}${ep}:${s.targetPort}`)}`;
      chains.push(`:${sep} - [0:0]`);
      const left = s.endpoints.length - i;
      const stat = left > 1 ? ` -m statistic --mode random --probability ${(1 / left).toFixed(11)}` : '';
      rules.push(`-A ${svc} -m comment --comment "${portName} -> ${ep}:${s.targetPort}"${stat} -j ${sep}`);
      sepRules.push(
        `-A ${sep} -s ${ep}/32 -m comment --comment "${portName}" -j KUBE-MARK-MASQ`,
        `-A ${sep} -p ${s.protocol} -m comment --comment "${portName}" -m ${s.protocol} -j DNAT --to-destination ${ep}:${s.targetPort}`,
      );
    });
  }
  rules.push(
    '-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS',
  );
  return ['*nat', ...chains, ...rules, ...sepRules, 'COMMIT', ''].join('\n');
}

/** An `nft -f` input: the kube-proxy table, replaced in one transaction. */
export function nftablesRules(services: BenchService[], clusterCidr: string): string {
  const elements: string[] = [];
  const chains: string[] = [];
  for (const s of services) {
    const id = hashOf(`${s.name}/${s.protocol}/${s.port}`);
    const svc = `service-${id}`;
    elements.push(`${s.vip} . ${s.protocol} . ${s.port} : goto ${svc}`);
    const eps = s.endpoints.map((ep) => ({ ep, chain: `endpoint-${hashOf(`${id}${ep}:${s.targetPort}`)}` }));
    chains.push(
      `  chain ${svc} {`,
      `    ip daddr ${s.vip} ${s.protocol} dport ${s.port} ip saddr != ${clusterCidr} jump mark-for-masquerade`,
      `    numgen random mod ${eps.length} vmap { ${eps.map((e, i) => `${i} : goto ${e.chain}`).join(' , ')} }`,
      '  }',
    );
    for (const e of eps)
      chains.push(
        `  chain ${e.chain} {`,
        `    ip saddr ${e.ep} jump mark-for-masquerade`,
        `    meta l4proto ${s.protocol} dnat to ${e.ep}:${s.targetPort}`,
        '  }',
      );
  }
  return [
    'add table ip kube-proxy',
    'delete table ip kube-proxy',
    'table ip kube-proxy {',
    '  map service-ips {',
    '    type ipv4_addr . inet_proto . inet_service : verdict',
    ...(elements.length ? [`    elements = { ${elements.join(', ')} }`] : []),
    '  }',
    '  chain mark-for-masquerade { meta mark set meta mark or 0x4000; }',
    '  chain masquerading {',
    '    meta mark & 0x4000 == 0 return',
    '    meta mark set meta mark xor 0x4000',
    '    masquerade fully-random',
    '  }',
    '  chain services { ip daddr . meta l4proto . th dport vmap @service-ips; }',
    '  chain nat-prerouting { type nat hook prerouting priority dstnat; policy accept; jump services; }',
    '  chain nat-output { type nat hook output priority -100; policy accept; jump services; }',
    '  chain nat-postrouting { type nat hook postrouting priority srcnat; policy accept; jump masquerading; }',
    ...chains,
    '}',
    '',
  ].join('\n');
}
