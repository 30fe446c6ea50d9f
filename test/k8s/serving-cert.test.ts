// The agent's self-signed serving certificate, made without openssl: OpenSSL (through Node's
// X509Certificate) reads it back with its names, addresses, validity and a signature by its own key.
import assert from 'node:assert/strict';
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { test } from 'node:test';
import { selfSignedCertificate } from '../../src/k8s/node/serving-cert.js';

test('a self-signed serving certificate: its key, its addresses, its validity, signed by itself', () => {
  const now = new Date('2026-12-02T01:00:00Z');
  const c = selfSignedCertificate('kbpf-node-logs n1', ['10.0.0.7', 'fd00::1:2', 'n1.example'], { now, days: 30 });
  const x = new X509Certificate(c.cert);
  assert.equal(x.subject, 'CN=kbpf-node-logs n1');
  assert.equal(x.issuer, x.subject);
  assert.equal(x.subjectAltName, 'IP Address:10.0.0.7, IP Address:FD00:0:0:0:0:0:1:2, DNS:n1.example');
  assert.equal(new Date(x.validFrom).toISOString(), '2026-12-02T00:00:00.000Z', 'an hour back, for clocks that differ');
  assert.equal(new Date(x.validTo).toISOString(), '2027-01-01T01:00:00.000Z');
  assert.ok(x.verify(x.publicKey), 'signed by its own key');
  assert.ok(x.checkPrivateKey(createPrivateKey(c.key)));
  assert.equal(x.ca, false);
  assert.deepEqual(x.keyUsage, ['1.3.6.1.5.5.7.3.1'], 'server authentication');
  assert.equal(c.fingerprint, x.fingerprint256.replace(/:/g, '').toLowerCase());
  assert.ok(x.checkIP('10.0.0.7'));
  // from 2050 on, validity is a GeneralizedTime (RFC 5280)
  const late = new X509Certificate(selfSignedCertificate('x', [], { now: new Date('2049-12-31T00:00:00Z') }).cert);
  assert.equal(new Date(late.validTo).getUTCFullYear(), 2051);
  // each one its own key
  assert.notEqual(selfSignedCertificate('x', []).fingerprint, selfSignedCertificate('x', []).fingerprint);
});
