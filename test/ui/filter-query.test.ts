// The flow filter as URL parameters (the page writes them, the server reads them) and the web
// view's listen address.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { FlowFilter } from '../../apps/flow-monitor/flow.js';
import { Invalid, isKind } from '../../src/errors.js';
import { filterFromQuery, filterToQuery } from '../../src/ui/filter-query.js';
import { parseListen } from '../../src/ui/listen.js';

describe('filter parameters', () => {
  it('reads the flags of kbpf flows, repeated or comma-separated, and writes them back', () => {
    const q = new URLSearchParams(
      'pod=default/web&pod=db&namespace=shop&from-ip=10.0.0.0/8&to-ip=10.1.0.2&from-pod=a&to-pod=b&port=80,443&service=shop/cart&verdict=dropped&protocol=TCP&tcp-flags=syn,RST&not=1',
    );
    const want: FlowFilter = {
      pod: ['default/web', 'db'],
      namespace: ['shop'],
      from_ip: ['10.0.0.0/8'],
      to_ip: ['10.1.0.2'],
      from_pod: ['a'],
      to_pod: ['b'],
      port: [80, 443],
      service: ['shop/cart'],
      verdict: ['DROPPED'],
      protocol: ['tcp'],
      tcp_flags: ['SYN', 'RST'],
      not: true,
    };
    assert.deepEqual(filterFromQuery(q), want);
    assert.deepEqual(filterFromQuery(filterToQuery(want)), want);
    assert.deepEqual(filterFromQuery(new URLSearchParams('')), {});
    assert.deepEqual(filterFromQuery(new URLSearchParams('not=0&pod=')), {});
  });

  it('refuses values that are not ones the filter takes', () => {
    for (const q of ['port=http', 'port=70000', 'verdict=ok', 'protocol=sctp', 'tcp-flags=NS', 'not=2'])
      assert.throws(
        () => filterFromQuery(new URLSearchParams(q)),
        (e) => isKind(e, Invalid),
        q,
      );
  });

  it('listen addresses: HOST:PORT, [V6]:PORT, :PORT', () => {
    assert.deepEqual(parseListen('127.0.0.1:8090'), { host: '127.0.0.1', port: 8090 });
    assert.deepEqual(parseListen('[::1]:0'), { host: '::1', port: 0 });
    assert.deepEqual(parseListen(':9000'), { host: '127.0.0.1', port: 9000 });
    assert.deepEqual(parseListen('localhost:1'), { host: 'localhost', port: 1 });
    for (const bad of ['8090', '127.0.0.1', '1.2.3.4:70000', '[zz]:80', '::1:80'])
      assert.throws(() => parseListen(bad), /is not/, bad);
  });
});
