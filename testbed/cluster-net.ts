// A small cluster network for north-south tests: node namespaces and a client namespace, each
// with an `eth0` on one bridge (in a namespace of its own, so nothing touches the root
// namespace). Nodes are NET.11, NET.12, …, the client NET.100 (a random 10.x.y.0/24). Each node
// has a pod address on its loopback (10.x'.N.10/32 in a second random range) that the
// other nodes route to through it, and backends listen there: a TCP server that answers every
// connection with the address it came from (`peer=IP:PORT node=NAME`) and logs it, and a UDP
// socket on the same port that answers each datagram the same way.
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Cleanup } from './kernel.js';
import { execInNetns, makeNetns, run, testSubnet } from './netns.js';

export interface ClusterNode {
  name: string;
  netns: string;
  /** its address on the bridge */
  ip: string;
  /** the address its backends listen on */
  podIp: string;
}

export interface ClusterNet {
  lan: string;
  nodes: ClusterNode[];
  client: { netns: string; ip: string };
  /** NET (three octets) of the bridge's /24 */
  subnet: string;
}

async function must(args: string[], netns?: string): Promise<void> {
  const r = await run('ip', netns ? ['-n', netns, ...args] : args);
  if (r.code !== 0) throw new Error(`ip ${args.join(' ')} failed: ${r.stderr.trim()}`);
}

/** `count` nodes and a client on one bridge; all removed at cleanup. */
export async function makeClusterNet(t: Cleanup, count = 3, prefix = 'kbpf-np'): Promise<ClusterNet> {
  const subnet = testSubnet();
  let pods = testSubnet();
  while (pods.split('.')[1] === subnet.split('.')[1]) pods = testSubnet();
  const podBase = pods.split('.').slice(0, 2).join('.');
  const lan = await makeNetns(t, prefix);
  await must(['link', 'add', 'br0', 'type', 'bridge'], lan);
  await must(['link', 'set', 'br0', 'up'], lan);
  const join = async (netns: string, i: number, addr: string) => {
    await must(['link', 'add', `p${i}`, 'netns', lan, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', netns]);
    await must(['link', 'set', `p${i}`, 'master', 'br0', 'up'], lan);
    await must(['addr', 'add', `${addr}/24`, 'dev', 'eth0'], netns);
    await must(['link', 'set', 'eth0', 'up'], netns);
  };
  const nodes: ClusterNode[] = [];
  for (let i = 1; i <= count; i++) {
    const netns = await makeNetns(t, prefix);
    const node = { name: `node${i}`, netns, ip: `${subnet}.${10 + i}`, podIp: `${podBase}.${i}.10` };
    await join(netns, i, node.ip);
    await must(['addr', 'add', `${node.podIp}/32`, 'dev', 'lo'], netns);
    nodes.push(node);
  }
  for (const n of nodes)
    for (const other of nodes)
      if (other !== n)
        await must(['route', 'add', `${podBase}.${nodes.indexOf(other) + 1}.0/24`, 'via', other.ip], n.netns);
  const client = { netns: await makeNetns(t, prefix), ip: `${subnet}.100` };
  await join(client.netns, 0, client.ip);
  return { lan, nodes, client, subnet };
}

/** A backend on a node: answers each TCP connection with who connected, and remembers them. */
export interface Backend {
  node: ClusterNode;
  port: number;
  /** the peers it saw, "IP:PORT" */
  peers: string[];
}

const SERVER = `const net=require('net');const [ip,port,name]=process.argv.slice(1);
net.createServer(s=>{const p=s.remoteAddress+':'+s.remotePort;console.log(p);s.end('peer='+p+' node='+name+'\\n')})
.listen(+port,ip,()=>console.log('listening'));
const u=require('dgram').createSocket('udp4');u.on('message',(m,r)=>{const p=r.address+':'+r.port;console.log('udp '+p);
u.send('peer='+p+' node='+name,r.port,r.address)});u.bind(+port,ip)`;

/** Starts a backend on `node`'s pod address; stopped at cleanup. */
export async function startBackend(t: Cleanup, node: ClusterNode, port = 8080): Promise<Backend> {
  const child: ChildProcess = spawn(
    'ip',
    ['netns', 'exec', node.netns, process.execPath, '-e', SERVER, node.podIp, String(port), node.name],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  t.after(async () => {
    if (child.exitCode === null) {
      child.kill('SIGKILL');
      await once(child, 'close').catch(() => {});
    }
  });
  const b: Backend = { node, port, peers: [] };
  let buf = '';
  let ready: () => void;
  const listening = new Promise<void>((r) => {
    ready = r;
  });
  child.stdout!.on('data', (d) => {
    buf += d;
    for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      if (line === 'listening') ready();
      else b.peers.push(line);
    }
  });
  await Promise.race([
    listening,
    sleep(5000).then(() => {
      throw new Error(`backend on ${node.name} did not start`);
    }),
  ]);
  return b;
}

const CLIENT = `const s=require('net').connect(+process.argv[2],process.argv[1]);let d='';
s.setTimeout(+process.argv[3],()=>{console.log('TIMEOUT');process.exit(0)});
s.on('data',x=>d+=x);s.on('end',()=>console.log(d.trim()));s.on('error',e=>console.log('ERR '+e.code))`;

/** Runs a client script (ADDR PORT TIMEOUT_MS as its arguments) in the client namespace: what it printed. */
async function clientRun(
  net: ClusterNet,
  script: string,
  addr: string,
  port: number,
  timeoutMs: number,
): Promise<string> {
  const args = ['-e', script, addr, String(port), String(timeoutMs)];
  const r = await execInNetns(net.client.netns, process.execPath, args, { timeoutMs: timeoutMs + 5000 });
  return r.stdout.trim();
}

/** One TCP connection from the client to addr:port: the backend's answer, TIMEOUT or ERR code. */
export function connectFromClient(net: ClusterNet, addr: string, port: number, timeoutMs = 2000): Promise<string> {
  return clientRun(net, CLIENT, addr, port, timeoutMs);
}

const UDP_CLIENT = `const u=require('dgram').createSocket('udp4');const [addr,port,ms]=process.argv.slice(1);
setTimeout(()=>{console.log('TIMEOUT');process.exit(0)},+ms);
u.on('message',(m,r)=>{console.log(m+' from='+r.address+':'+r.port);process.exit(0)});u.send('hi',+port,addr)`;

/** One UDP request from the client to addr:port: "ANSWER from=SOURCE:PORT" (who the reply came from), or TIMEOUT. */
export function udpFromClient(net: ClusterNet, addr: string, port: number, timeoutMs = 2000): Promise<string> {
  return clientRun(net, UDP_CLIENT, addr, port, timeoutMs);
}

/** tcpdump on a node's eth0 for the length of `during`; the lines it printed (one per packet). */
export async function capture(node: ClusterNode, filter: string, during: () => Promise<unknown>): Promise<string[]> {
  const child = spawn('ip', ['netns', 'exec', node.netns, 'tcpdump', '-i', 'eth0', '-n', '-l', '-q', filter], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (err += d));
  try {
    for (let i = 0; i < 100 && !/listening on/.test(err); i++) await sleep(20);
    if (!/listening on/.test(err)) throw new Error(`tcpdump did not start: ${err.trim()} (Debian package tcpdump)`);
    await during();
    await sleep(200);
  } finally {
    child.kill('SIGINT');
    await once(child, 'close').catch(() => {});
  }
  return out.split('\n').filter(Boolean);
}

/** Runs a shell command in a node (for sysctls and the like); throws on failure. */
export async function inNode(node: ClusterNode, script: string): Promise<string> {
  const r = await execInNetns(node.netns, 'sh', ['-c', script]);
  if (r.code !== 0) throw new Error(`${node.name}: ${script}: ${r.stderr.trim()}`);
  return r.stdout;
}
