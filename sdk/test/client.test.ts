import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { backoffDelay, retryAfterMs } from '../src/backoff.js';
import { Client, KEEPALIVE_BUDGET_BYTES, REQUEST_TIMEOUT_MS, type WireEvent } from '../src/client.js';
import { ConfigError, type ClientOptions } from '../src/config.js';
import { MemoryStorage, fakePage, settle } from './fakes.js';

const OPTIONS: ClientOptions = {
  collectorUrl: 'http://127.0.0.1:8080/',
  ingestKey: 'demo-ingest-key',
  orgId: 'demo',
  batchSize: 3,
  flushIntervalMs: 5000,
};

let n = 0;
function event(type = 'heartbeat', extra: Record<string, unknown> = {}): WireEvent {
  return { event_id: `e-${++n}`, event_type: type, view_id: 'v1', ...extra };
}

describe('config', () => {
  it('refuses bad options with a message naming the option', () => {
    const page = fakePage();
    assert.throws(() => new Client({ ...OPTIONS, collectorUrl: 'not a url' }, page.runtime), /collectorUrl/);
    assert.throws(() => new Client({ ...OPTIONS, collectorUrl: 'ftp://x' }, page.runtime), /http/);
    assert.throws(() => new Client({ ...OPTIONS, orgId: '' }, page.runtime), /orgId/);
    assert.throws(() => new Client({ ...OPTIONS, batchSize: 0 }, page.runtime), /batchSize/);
    assert.throws(() => new Client({ ...OPTIONS, batchSize: 33 }, page.runtime), ConfigError);
    assert.throws(() => new Client({ ...OPTIONS, heartbeatIntervalMs: 1.5 }, page.runtime), /heartbeatIntervalMs/);
    assert.throws(() => new Client({ ...OPTIONS, sendTitles: 'yes' as never }, page.runtime), /sendTitles/);
  });

  it('posts to /v1/events under the base URL', async () => {
    const page = fakePage();
    const client = new Client({ ...OPTIONS, batchSize: 1 }, page.runtime);
    client.enqueue(event());
    await settle();
    assert.equal(page.fetch.requests[0]?.url, 'http://127.0.0.1:8080/v1/events');
    assert.equal(page.fetch.requests[0]?.init.headers['X-API-Key'], 'demo-ingest-key');
    assert.equal(page.fetch.requests[0]?.init.headers['Content-Type'], 'application/json');
  });
});

describe('batching', () => {
  it('sends a full batch at once and a partial one after the flush interval', async () => {
    const page = fakePage();
    const client = new Client(OPTIONS, page.runtime);
    for (let i = 0; i < 4; i++) client.enqueue(event());
    await settle();
    assert.equal(page.fetch.requests.length, 1);
    assert.equal(page.fetch.requests[0]?.events.length, 3);
    await page.clock.advance(4999);
    assert.equal(page.fetch.requests.length, 1);
    await page.clock.advance(1);
    assert.equal(page.fetch.requests.length, 2);
    assert.equal(page.fetch.requests[1]?.events.length, 1);
    assert.deepEqual(client.stats, { sent: 4, retried: 0, failed: 0, dropped: 0 });
  });

  it('flush() sends everything queued now and resolves once it is acknowledged', async () => {
    const page = fakePage();
    const client = new Client(OPTIONS, page.runtime);
    client.enqueue(event());
    client.enqueue(event());
    await client.flush();
    assert.equal(page.fetch.requests.length, 1);
    assert.equal(client.stats.sent, 2);
    assert.deepEqual(page.clock.pending(), [], 'the interval timer is cancelled');
  });

  it('fills in the hashed viewer id, never the raw one', async () => {
    const page = fakePage();
    const client = new Client({ ...OPTIONS, viewerId: 'alice@example.com' }, page.runtime);
    client.enqueue(event());
    await client.flush();
    const sent = page.fetch.requests[0]?.events[0];
    assert.match(String(sent?.viewer_id), /^[0-9a-f]{64}$/);
    assert.ok(!JSON.stringify(page.fetch.requests).includes('alice'));
    const other = new Client({ ...OPTIONS, orgId: 'other', viewerId: 'alice@example.com' }, fakePage().runtime);
    const e = event();
    other.enqueue(e);
    await other.flush();
    assert.notEqual(e.viewer_id, sent?.viewer_id, 'salted with the organisation');
  });

  it('drops the oldest events beyond maxQueueSize and counts them', async () => {
    const page = fakePage();
    page.fetch.hold = true;
    const client = new Client({ ...OPTIONS, batchSize: 32, maxQueueSize: 32 }, page.runtime);
    const events = Array.from({ length: 100 }, () => event());
    for (const e of events) client.enqueue(e);
    assert.equal(client.stats.dropped, 68);
    await settle();
    page.fetch.release();
    await client.flush();
    const sent = page.fetch.requests.flatMap((r) => r.events.map((e) => e.event_id));
    assert.deepEqual(sent, events.slice(68).map((e) => e.event_id), 'the newest are kept');
  });
});

describe('retries', () => {
  it('honours Retry-After on 503 and resends the same batch with the same event ids', async () => {
    const page = fakePage();
    page.fetch.reply({ status: 503, headers: { 'Retry-After': '7' } });
    const client = new Client(OPTIONS, page.runtime);
    for (let i = 0; i < 3; i++) client.enqueue(event());
    await settle();
    assert.equal(page.fetch.requests.length, 1);
    await page.clock.advance(6999);
    assert.equal(page.fetch.requests.length, 1, 'not before Retry-After');
    await page.clock.advance(1);
    assert.equal(page.fetch.requests.length, 2);
    const [first, second] = page.fetch.requests;
    assert.equal(second?.init.body, first?.init.body);
    assert.deepEqual(client.stats, { sent: 3, retried: 1, failed: 0, dropped: 0 });
  });

  it('retries 429 after Retry-After given as an HTTP date', async () => {
    const page = fakePage();
    const at = new Date(page.clock.now + 3000).toUTCString();
    page.fetch.reply({ status: 429, headers: { 'Retry-After': at } });
    const client = new Client({ ...OPTIONS, batchSize: 1 }, page.runtime);
    client.enqueue(event());
    await page.clock.advance(2999);
    assert.equal(page.fetch.requests.length, 1);
    await page.clock.advance(1);
    assert.equal(page.fetch.requests.length, 2);
  });

  it('backs off exponentially with jitter on network errors and 5xx, then gives up', async () => {
    const page = fakePage();
    page.fetch.reply('network-error', { status: 500 }, { status: 502 }, 'network-error');
    const client = new Client({ ...OPTIONS, batchSize: 1, maxRetries: 3 }, page.runtime);
    client.enqueue(event());
    await page.clock.advance(60_000);
    const times = page.fetch.requests.map((r) => r.at - page.fetch.requests[0]!.at);
    // random() is 0.5 in the fake: delay = ceiling * 3/4 with ceiling 1 s, 2 s, 4 s.
    assert.deepEqual(times, [0, 750, 750 + 1500, 750 + 1500 + 3000]);
    assert.deepEqual(client.stats, { sent: 0, retried: 3, failed: 1, dropped: 0 });
  });

  it('retries a request that gets no answer, with the same body', async () => {
    const page = fakePage();
    page.fetch.hold = true;
    const client = new Client({ ...OPTIONS, batchSize: 1 }, page.runtime);
    client.enqueue(event());
    await page.clock.advance(REQUEST_TIMEOUT_MS - 1);
    assert.equal(page.fetch.requests.length, 1);
    page.fetch.hold = false;
    await page.clock.advance(1 + 750); // the timeout, then the first backoff
    assert.equal(page.fetch.requests.length, 2);
    assert.equal(page.fetch.requests[1]?.init.body, page.fetch.requests[0]?.init.body);
    assert.deepEqual(client.stats, { sent: 1, retried: 1, failed: 0, dropped: 0 });
  });

  it('does not retry other 4xx', async () => {
    const page = fakePage();
    page.fetch.reply({ status: 400, body: '{"error":"malformed_body"}' }, { status: 401 });
    const client = new Client({ ...OPTIONS, batchSize: 1 }, page.runtime);
    client.enqueue(event());
    await page.clock.advance(60_000);
    client.enqueue(event());
    await page.clock.advance(60_000);
    assert.equal(page.fetch.requests.length, 2);
    assert.deepEqual(client.stats, { sent: 0, retried: 0, failed: 2, dropped: 0 });
  });

  it('counts the events a 207 rejected as failed and does not resend them', async () => {
    const page = fakePage();
    page.fetch.reply({ status: 207, body: '{"accepted":2,"rejected":1,"errors":[]}' });
    const client = new Client(OPTIONS, page.runtime);
    for (let i = 0; i < 3; i++) client.enqueue(event());
    await page.clock.advance(60_000);
    assert.equal(page.fetch.requests.length, 1);
    assert.deepEqual(client.stats, { sent: 2, retried: 0, failed: 1, dropped: 0 });
  });

  it('keeps one request in flight: later batches wait for the retried one', async () => {
    const page = fakePage();
    page.fetch.reply({ status: 503, headers: { 'Retry-After': '1' } });
    const client = new Client(OPTIONS, page.runtime);
    for (let i = 0; i < 6; i++) client.enqueue(event());
    await page.clock.advance(5000);
    const ids = page.fetch.requests.map((r) => r.events.map((e) => e.event_id).join(','));
    assert.equal(ids.length, 3);
    assert.equal(ids[0], ids[1]);
    assert.notEqual(ids[2], ids[1]);
    const all = page.fetch.requests.slice(1).flatMap((r) => r.events.map((e) => e.event_id));
    assert.equal(new Set(all).size, 6, 'every event delivered once after the retry');
  });

  it('computes delays from the pure helpers', () => {
    assert.equal(backoffDelay(0, () => 0), 500);
    assert.equal(backoffDelay(0, () => 1), 1000);
    assert.equal(backoffDelay(10, () => 1), 30_000);
    assert.equal(retryAfterMs('120', 0), 120_000);
    assert.equal(retryAfterMs('9999', 0), 120_000);
    assert.equal(retryAfterMs('soon', 0), undefined);
    assert.equal(retryAfterMs(null, 0), undefined);
  });
});

describe('page exit', () => {
  it('beacons what is queued as text/plain with the key in the query string', async () => {
    const page = fakePage();
    const client = new Client(OPTIONS, page.runtime);
    client.enqueue(event());
    client.enqueue(event());
    await settle();
    page.hide(false);
    assert.equal(page.beacons.length, 1);
    assert.equal(page.beacons[0]?.url, 'http://127.0.0.1:8080/v1/events?key=demo-ingest-key');
    const body = JSON.parse(page.beacons[0]!.body) as { events: WireEvent[] };
    assert.equal(body.events.length, 2);
    await page.clock.advance(10_000);
    assert.equal(page.fetch.requests.length, 0, 'nothing is sent twice');
    assert.equal(client.stats.sent, 2);
  });

  it('runs unload hooks first so the end event goes out in the beacon', async () => {
    const page = fakePage();
    const client = new Client(OPTIONS, page.runtime);
    client.onUnload(() => client.enqueue(event('view_end', { data: { reason: 'unload' } })));
    page.hide(true);
    const body = JSON.parse(page.beacons[0]!.body) as { events: WireEvent[] };
    assert.deepEqual(body.events.map((e) => e.event_type), ['view_end']);
  });

  it('takes over a batch waiting for its retry, and the retry never happens', async () => {
    const page = fakePage();
    page.fetch.reply({ status: 503, headers: { 'Retry-After': '30' } });
    const client = new Client(OPTIONS, page.runtime);
    for (let i = 0; i < 4; i++) client.enqueue(event());
    await settle();
    page.hide(false);
    const ids = page.beacons.flatMap((b) => (JSON.parse(b.body) as { events: WireEvent[] }).events.map((e) => e.event_id));
    assert.equal(ids.length, 4);
    await page.clock.advance(120_000);
    assert.equal(page.fetch.requests.length, 1, 'the 503 batch is not sent again after the beacon');
  });

  it('splits into chunks of at most batchSize within the 64 KiB keepalive budget', async () => {
    const page = fakePage();
    page.fetch.hold = true;
    const client = new Client({ ...OPTIONS, batchSize: 32, maxQueueSize: 5000 }, page.runtime);
    const padding = 'x'.repeat(900);
    for (let i = 0; i < 200; i++) client.enqueue(event('heartbeat', { padding }));
    await settle();
    page.hide(true);
    const sizes = page.beacons.map((b) => new TextEncoder().encode(b.body).length);
    const counts = page.beacons.map((b) => (JSON.parse(b.body) as { events: unknown[] }).events.length);
    assert.ok(counts.every((c) => c <= 32));
    assert.ok(sizes.reduce((a, b) => a + b, 0) <= KEEPALIVE_BUDGET_BYTES);
    assert.ok(counts.reduce((a, b) => a + b, 0) >= 60, 'the budget is used, not wasted');
  });

  it('falls back to a keepalive fetch with a safelisted content type when sendBeacon refuses', async () => {
    const page = fakePage();
    page.beaconAccepts = false;
    const client = new Client(OPTIONS, page.runtime);
    client.enqueue(event());
    page.hide(true);
    await settle();
    const request = page.fetch.requests[0];
    assert.equal(request?.url, 'http://127.0.0.1:8080/v1/events?key=demo-ingest-key');
    assert.equal(request?.init.keepalive, true);
    assert.equal(request?.init.headers['Content-Type'], 'text/plain;charset=UTF-8');
    assert.equal(request?.init.headers['X-API-Key'], undefined, 'no header that needs a preflight');
  });
});

describe('session', () => {
  it('keeps the session id across clients of one tab and renews it after 30 idle minutes', () => {
    const storage = new MemoryStorage();
    const page = fakePage({}, storage);
    const first = new Client(OPTIONS, page.runtime).sessionId;
    const again = new Client(OPTIONS, page.runtime).sessionId;
    assert.equal(again, first);
    page.clock.now += 31 * 60 * 1000;
    assert.notEqual(new Client(OPTIONS, page.runtime).sessionId, first);
  });
});
