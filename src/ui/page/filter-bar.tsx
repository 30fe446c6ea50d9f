// The filter bar: the flags of `kbpf flows` as fields. What is typed is a draft; the page applies
// it (src/ui/filter-query.ts checks it) once typing pauses.
import type { TcpFlag, Verdict } from '../../../apps/flow-monitor/flow.js';
import { PROTOCOLS, TCP_FLAGS, VERDICTS } from '../filter-query.js';

type Protocol = (typeof PROTOCOLS)[number];

/** The text fields, by their parameter (the CLI flag's name). */
export const TEXT_FIELDS: readonly { param: string; label: string; placeholder: string }[] = [
  { param: 'pod', label: 'pod', placeholder: 'ns/name-prefix' },
  { param: 'namespace', label: 'namespace', placeholder: 'default' },
  { param: 'from-pod', label: 'from pod', placeholder: 'ns/name' },
  { param: 'to-pod', label: 'to pod', placeholder: 'ns/name' },
  { param: 'from-ip', label: 'from ip', placeholder: '10.0.0.0/8' },
  { param: 'to-ip', label: 'to ip', placeholder: 'address or CIDR' },
  { param: 'port', label: 'port', placeholder: '80, 443' },
  { param: 'service', label: 'service', placeholder: 'ns/name' },
];

export interface Draft {
  text: Record<string, string>;
  verdict: Verdict[];
  protocol: Protocol[];
  tcp_flags: TcpFlag[];
  not: boolean;
}

function knownValues<T extends string>(q: URLSearchParams, param: string, allowed: readonly T[], up: boolean): T[] {
  const vs = (q.get(param) ?? '').split(',').map((v) => (up ? v.toUpperCase() : v.toLowerCase()).trim());
  return allowed.filter((a) => vs.includes(a));
}

export function draftFromQuery(q: URLSearchParams): Draft {
  const text: Record<string, string> = {};
  for (const f of TEXT_FIELDS) text[f.param] = q.getAll(f.param).join(', ');
  return {
    text,
    verdict: knownValues(q, 'verdict', VERDICTS, true),
    protocol: knownValues(q, 'protocol', PROTOCOLS, false),
    tcp_flags: knownValues(q, 'tcp-flags', TCP_FLAGS, true),
    not: ['', '1', 'true'].includes(q.get('not') ?? 'no'),
  };
}

export function draftToQuery(d: Draft): URLSearchParams {
  const q = new URLSearchParams();
  for (const f of TEXT_FIELDS) {
    const v = (d.text[f.param] ?? '')
      .split(/[\s,]+/)
      .filter(Boolean)
      .join(',');
    if (v) q.set(f.param, v);
  }
  if (d.verdict.length) q.set('verdict', d.verdict.join(','));
  if (d.protocol.length) q.set('protocol', d.protocol.join(','));
  if (d.tcp_flags.length) q.set('tcp-flags', d.tcp_flags.join(','));
  if (d.not) q.set('not', '1');
  return q;
}

export const EMPTY_DRAFT: Draft = draftFromQuery(new URLSearchParams());

function toggle<T>(list: T[], v: T): T[] {
  return list.includes(v) ? list.filter((x) => x !== v) : [...list, v];
}

function Chips<T extends string>(props: { name: string; all: readonly T[]; on: T[]; set: (v: T[]) => void }) {
  return (
    <fieldset class="chips">
      <legend>{props.name}</legend>
      {props.all.map((v) => (
        <label key={v} class={props.on.includes(v) ? 'chip on' : 'chip'}>
          <input
            type="checkbox"
            name={`${props.name}-${v}`}
            checked={props.on.includes(v)}
            onChange={() => props.set(toggle(props.on, v))}
          />
          {v}
        </label>
      ))}
    </fieldset>
  );
}

export function FilterBar(props: { draft: Draft; onChange: (d: Draft) => void; error?: string }) {
  const d = props.draft;
  const set = (patch: Partial<Draft>): void => props.onChange({ ...d, ...patch });
  return (
    <form class="filters" onSubmit={(e) => e.preventDefault()} aria-label="flow filters">
      <div class="text-fields">
        {TEXT_FIELDS.map((f) => (
          <label key={f.param} class="field">
            <span>{f.label}</span>
            <input
              type="text"
              name={f.param}
              placeholder={f.placeholder}
              value={d.text[f.param] ?? ''}
              spellcheck={false}
              onInput={(e) => set({ text: { ...d.text, [f.param]: (e.target as HTMLInputElement).value } })}
            />
          </label>
        ))}
      </div>
      <div class="chip-rows">
        <Chips name="verdict" all={VERDICTS} on={d.verdict} set={(verdict) => set({ verdict })} />
        <Chips name="protocol" all={PROTOCOLS} on={d.protocol} set={(protocol) => set({ protocol })} />
        <Chips name="tcp flags" all={TCP_FLAGS} on={d.tcp_flags} set={(tcp_flags) => set({ tcp_flags })} />
        <label class={d.not ? 'chip not on' : 'chip not'} title="show the flows the filter does not match">
          <input type="checkbox" name="not" checked={d.not} onChange={() => set({ not: !d.not })} />
          not
        </label>
        <button type="button" class="clear" onClick={() => props.onChange(EMPTY_DRAFT)}>
          clear
        </button>
      </div>
      {props.error && (
        <p class="filter-error" role="alert">
          {props.error}
        </p>
      )}
    </form>
  );
}
