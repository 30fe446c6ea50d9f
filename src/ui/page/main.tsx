// The web view's page: the filter bar, the service map, the live flow table and a flow's detail.
// Flows come as Server-Sent Events (GET api/flows/stream, the backlog first); the map is the
// server's, fetched again every MAP_REFRESH_MS. The filter lives in the address bar, so a view can
// be bookmarked or shared. Requests are relative, so the page works under any path prefix.
import { render } from 'preact';
import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import type { Flow, FlowFilter } from '../../../apps/flow-monitor/flow.js';
import { filterFromQuery, filterToQuery } from '../filter-query.js';
import type { MapNode, ServiceMap } from '../service-map.js';
import { type Draft, draftFromQuery, draftToQuery, EMPTY_DRAFT, FilterBar } from './filter-bar.js';
import { FlowDetail } from './flow-detail.js';
import { FlowTable } from './flow-table.js';
import { MapView } from './map-view.js';

/** reports asked for when the stream opens */
const BACKLOG = 200;
/** flows kept in the table (the oldest go first) */
const MAX_ROWS = 1000;
const MAP_REFRESH_MS = 2000;
const RENDER_EVERY_MS = 100;
const APPLY_AFTER_MS = 300;

type StreamStatus = 'connecting' | 'live' | 'reconnecting';

function useFlowStream(query: string): { flows: Flow[]; status: StreamStatus } {
  const rows = useRef(new Map<string, Flow>());
  const [, setVersion] = useState(0);
  const [status, setStatus] = useState<StreamStatus>('connecting');
  useEffect(() => {
    rows.current = new Map();
    setVersion((v) => v + 1);
    setStatus('connecting');
    let closed = false;
    let timer: number | undefined;
    const es = new EventSource(`api/flows/stream?last=${BACKLOG}${query ? `&${query}` : ''}`);
    es.onmessage = (m: MessageEvent<string>) => {
      const f = JSON.parse(m.data) as Flow;
      const map = rows.current;
      map.delete(f.flow_id);
      map.set(f.flow_id, f);
      if (map.size > MAX_ROWS) map.delete(map.keys().next().value!);
      timer ??= window.setTimeout(() => {
        timer = undefined;
        if (!closed) setVersion((v) => v + 1);
      }, RENDER_EVERY_MS);
    };
    es.addEventListener('live', () => setStatus('live'));
    es.onerror = () => setStatus('reconnecting');
    return () => {
      closed = true;
      window.clearTimeout(timer);
      es.close();
    };
  }, [query]);
  return { flows: [...rows.current.values()].reverse(), status };
}

function useServiceMap(query: string, windowS: number): { map?: ServiceMap; error?: string } {
  const [state, setState] = useState<{ map?: ServiceMap; error?: string }>({});
  useEffect(() => {
    let stopped = false;
    let timer: number | undefined;
    const load = async (): Promise<void> => {
      try {
        const r = await fetch(`api/map?window=${windowS}${query ? `&${query}` : ''}`);
        const body = (await r.json()) as ServiceMap | { error: string };
        if (stopped) return;
        if ('error' in body) setState((s) => ({ map: s.map, error: body.error }));
        else setState({ map: body });
      } catch (e) {
        if (!stopped) setState((s) => ({ map: s.map, error: `map: ${(e as Error).message}` }));
      }
      if (!stopped) timer = window.setTimeout(load, MAP_REFRESH_MS);
    };
    void load();
    return () => {
      stopped = true;
      window.clearTimeout(timer);
    };
  }, [query, windowS]);
  return state;
}

/**
 * The filter of a click on the map: a node's flows, or those from one node to the other. A workload
 * is its pods (`namespace/workload` as a pod-name prefix); an address without a pod is an address
 * (alone: as the destination, what such nodes mostly are — DNS, the outside).
 */
function pickedDraft(from: MapNode, to?: MapNode): Draft {
  const text = { ...EMPTY_DRAFT.text };
  const pods = (n: MapNode): string => `${n.namespace ?? ''}/${n.label}`;
  const pick = (n: MapNode, pod: string, ip: string): void => {
    if (n.kind === 'workload') text[pod] = pods(n);
    else text[ip] = n.id;
  };
  if (to) {
    pick(from, 'from-pod', 'from-ip');
    pick(to, 'to-pod', 'to-ip');
  } else pick(from, 'pod', 'to-ip');
  return { ...EMPTY_DRAFT, text };
}

function initialFilter(): FlowFilter {
  try {
    return filterFromQuery(new URLSearchParams(location.search));
  } catch {
    return {};
  }
}

function App() {
  const [draft, setDraft] = useState<Draft>(() => draftFromQuery(new URLSearchParams(location.search)));
  const [filter, setFilter] = useState<FlowFilter>(initialFilter);
  const [filterError, setFilterError] = useState<string>();
  const [windowS, setWindowS] = useState(60);
  const [selected, setSelected] = useState<string>();

  useEffect(() => {
    const t = window.setTimeout(() => {
      try {
        setFilter(filterFromQuery(draftToQuery(draft)));
        setFilterError(undefined);
      } catch (e) {
        setFilterError((e as Error).message);
      }
    }, APPLY_AFTER_MS);
    return () => window.clearTimeout(t);
  }, [draft]);

  const query = useMemo(() => filterToQuery(filter).toString(), [filter]);
  useEffect(() => {
    history.replaceState(null, '', query ? `?${query}` : location.pathname);
  }, [query]);

  const { flows, status } = useFlowStream(query);
  const map = useServiceMap(query, windowS);
  const detail = selected === undefined ? undefined : flows.find((f) => f.flow_id === selected);

  return (
    <div class={detail ? 'app with-detail' : 'app'}>
      <header class="top">
        <h1>
          kbpf <span class="sub">flows</span>
        </h1>
        <span class={`status ${status}`} data-status={status}>
          {status}
        </span>
        <span class="count">
          {flows.length} {flows.length === 1 ? 'flow' : 'flows'}
        </span>
      </header>
      <FilterBar draft={draft} onChange={setDraft} error={filterError} />
      <main>
        <MapView
          map={map.map}
          error={map.error}
          windowS={windowS}
          onWindow={setWindowS}
          onPick={(from, to) => setDraft(pickedDraft(from, to))}
        />
        <section class="table" aria-label="flows">
          <h2>Flows</h2>
          <FlowTable flows={flows} selected={selected} onSelect={setSelected} />
        </section>
      </main>
      {detail && <FlowDetail flow={detail} onClose={() => setSelected(undefined)} />}
    </div>
  );
}

render(<App />, document.getElementById('app')!);
