import { test } from 'node:test';
import assert from 'node:assert/strict';
import { endpointsFor } from '../../src/agent/http.js';

/** What each listener serves (the requests themselves are tested against real agents in test/lab/control). */
test('the TCP listener serves the probes only; /status only when asked for; actions only on the socket', () => {
  const served = (l: 'tcp' | 'socket', statusOnTcp?: boolean) =>
    Object.entries(endpointsFor(l, statusOnTcp))
      .map(([path, e]) => `${e.method} ${path}`)
      .sort();
  assert.deepEqual(served('tcp'), ['GET /healthz', 'GET /metrics', 'GET /readyz']);
  assert.deepEqual(served('tcp', true), ['GET /healthz', 'GET /metrics', 'GET /readyz', 'GET /status']);
  assert.deepEqual(served('socket'), [
    'GET /healthz',
    'GET /metrics',
    'GET /readyz',
    'GET /status',
    'POST /leave',
  ]);
  assert.ok(
    Object.values(endpointsFor('tcp', true)).every((e) => e.method === 'GET'),
    'nothing on TCP changes state',
  );
});
