// The result of `kbpf test`: one line per case (PASS / FAIL / SKIP / ERROR, the engines that ran
// it), the differences of a failed case indented below it, and a summary; the engines' skip
// reasons once each.
import type { CaseResult, TestReport } from '../../pkgtest/runner.js';
import { escapeLines } from './escape.js';
import { data, type TextFormat } from './output.js';

const MARK: Record<CaseResult['status'], string> = { pass: 'PASS ', fail: 'FAIL ', skip: 'SKIP ', error: 'ERROR' };

function caseLine(c: CaseResult): string {
  const ran = c.ran.length ? c.ran.join(', ') : 'not run';
  const skipped = c.skipped.length ? `; ${c.skipped.map((s) => s.engine).join(', ')} skipped` : '';
  const head = `  ${MARK[c.status]} ${c.name}  (${ran}${skipped}, ${c.ms} ms)`;
  const details = c.status === 'skip' ? c.skipped.map((s) => `${s.engine}: ${s.reason}`) : c.failures;
  return [head, ...details.map((f) => f.replace(/^/gm, '        '))].join('\n');
}

export function renderTestReport(format: TextFormat, r: TestReport): string {
  if (format !== 'text') return data(format, r);
  const lines: string[] = [`${r.package}: ${r.cases.length} case(s), engine ${r.engine}`];
  let file = '';
  for (const c of r.cases) {
    if (c.file !== file) {
      file = c.file;
      lines.push(file);
    }
    lines.push(caseLine(c));
  }
  const reasons = new Map<string, number>();
  for (const c of r.cases)
    if (c.status !== 'skip')
      for (const s of c.skipped)
        reasons.set(`${s.engine}: ${s.reason}`, (reasons.get(`${s.engine}: ${s.reason}`) ?? 0) + 1);
  if (reasons.size) {
    lines.push('skipped by an engine:');
    for (const [why, n] of reasons) lines.push(`  ${n} case(s): ${why}`);
  }
  lines.push(`${r.passed} passed, ${r.failed} failed, ${r.skipped} skipped`);
  return `${escapeLines(lines.join('\n'))}\n`;
}
