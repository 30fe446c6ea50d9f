// Fault injection for crash tests: with KBPF_FAULT=<point>, the agent kills itself (SIGKILL, as
// an OOM kill or a power cut would) when it reaches that point. Points: upgrade-after-attach
// (new revision attached and pinned, not committed), run-after-attach, rm-midway (the record
// of a removed instance gone, its pins and log not yet).
export function faultPoint(point: string): void {
  if (process.env.KBPF_FAULT === point) process.kill(process.pid, 'SIGKILL');
}
