import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { NeutronClient } from '../../src/openstack/neutron.js';
import { NeutronApiError } from '../../src/openstack/errors.js';

/**
 * Neutron answers 500 when a database conflict escapes its own retries; real Neutron cannot be made to
 * do that on demand, so a stand-in HTTP server (this file only) answers 500 a given number of times.
 */
async function standIn(failures: number) {
  const seen: string[] = [];
  let left = failures;
  const server = createServer((req, res) => {
    seen.push(`${req.method} ${req.url}`);
    req.resume();
    req.on('end', () => {
      if (left > 0) {
        left--;
        res.writeHead(500, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ NeutronError: { type: 'HTTPInternalServerError', message: 'db locked' } }));
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ router: { id: 'r1', routes: [] } }));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return { client: new NeutronClient({ endpoint: url }), seen, close: () => server.close() };
}

test('an idempotent request (PUT) that meets a 500 is sent again and succeeds', async (t) => {
  const s = await standIn(2);
  t.after(s.close);
  const r = await s.client.request<{ router: { id: string } }>('PUT', '/routers/r1/remove_extraroutes', {
    body: { router: { routes: [] } },
  });
  assert.equal(r.router.id, 'r1');
  assert.equal(s.seen.length, 3);
});

test('a POST (a create) that meets a 500 fails at once, naming the call; a PUT gives up after 3 retries', async (t) => {
  const s = await standIn(10);
  t.after(s.close);
  await assert.rejects(
    s.client.request('POST', '/ports', { body: { port: {} } }),
    (e: unknown) =>
      e instanceof NeutronApiError && e.status === 500 && /POST \/ports failed: 500/.test(e.message),
  );
  assert.equal(s.seen.length, 1);
  await assert.rejects(s.client.request('PUT', '/routers/r1', { body: {} }), NeutronApiError);
  assert.equal(s.seen.length, 1 + 4);
});
