/**
 * The client: one per page. Owns the envelope every event shares, the queue, batching,
 * retries and the last flush when the page goes away. Trackers (one per player) hand
 * it finished events.
 */
import { backoffDelay, isRetryable, retryAfterMs } from './backoff.js';
import { type ClientConfig, type ClientOptions, resolveConfig } from './config.js';
import { anonymousViewerId, sessionId, touchSession } from './ids.js';
import { hashViewerId } from './privacy.js';
import { type HttpResponse, type Runtime, browserRuntime } from './runtime.js';
import { type Platform, parseUserAgent, withClientHints } from './ua.js';

export type WireEvent = Record<string, unknown> & { event_id: string; event_type: string };

export interface ClientStats {
  /** Events the collector acknowledged (or, on page exit, the browser accepted for sending). */
  sent: number;
  /** Requests sent again after a network error, 408, 429 or 5xx. */
  retried: number;
  /** Events given up on: refused by the collector (4xx) or out of retries. */
  failed: number;
  /** Events dropped without sending: queue overflow, or no room in the page-exit budget. */
  dropped: number;
}

/** Browsers refuse keepalive requests beyond 64 KiB in flight in total (Fetch §4.5). */
export const KEEPALIVE_BUDGET_BYTES = 64 * 1024;

interface Batch {
  events: WireEvent[];
  body: string;
  phase: 'sending' | 'waiting';
  handedOff: boolean;
}

export type UnloadHook = () => void;

export const SDK_VERSION = '0.1.0';
export const REQUEST_TIMEOUT_MS = 15_000;

export class Client {
  readonly config: ClientConfig;
  readonly stats: ClientStats = { sent: 0, retried: 0, failed: 0, dropped: 0 };
  readonly sessionId: string;
  platform: Platform;

  private readonly runtime: Runtime;
  private queue: WireEvent[] = [];
  private inflight: Batch | undefined;
  private draining: Promise<void> | undefined;
  private timer: unknown;
  private viewerId: string | undefined;
  private readonly viewerReady: Promise<void>;
  private readonly unloadHooks = new Set<UnloadHook>();
  private readonly removePageListeners: () => void;
  private wake: (() => void) | undefined;
  private sendAll = false;

  constructor(options: ClientOptions, runtime: Runtime = browserRuntime()) {
    this.config = resolveConfig(options);
    this.runtime = runtime;
    this.sessionId = sessionId(runtime);
    this.platform = parseUserAgent(runtime.userAgent, runtime.maxTouchPoints);
    this.viewerReady = this.resolveViewer();
    void withClientHints(this.platform, runtime.userAgentData).then((p) => {
      this.platform = p;
    });
    this.removePageListeners = runtime.onPageHide((unloading) => this.onPageHide(unloading));
  }

  private async resolveViewer(): Promise<void> {
    const raw = this.config.viewerId ?? anonymousViewerId(this.runtime);
    try {
      this.viewerId = await hashViewerId(this.runtime.sha256Hex, this.config.orgId, raw);
    } catch (error) {
      // Never send a raw id: without SubtleCrypto (plain-http pages) use a random one.
      this.log('viewer id not hashed, sending a random id instead', error);
      this.viewerId = this.runtime.randomUUID();
    }
  }

  newId(): string {
    return this.runtime.randomUUID();
  }

  get runtimeClock(): Runtime {
    return this.runtime;
  }

  /** The fields every event carries, besides the tracker's view fields. */
  envelope(): Record<string, unknown> {
    const c = this.config;
    return {
      org_id: c.orgId,
      session_id: this.sessionId,
      env: c.env,
      app_name: c.appName,
      app_version: c.appVersion,
      device: this.platform.device,
      os: this.platform.os,
      browser: this.platform.browser,
    };
  }

  /** Queues one event; sends when a batch is full or the flush interval passes. */
  enqueue(event: WireEvent): void {
    this.queue.push(event);
    touchSession(this.runtime, this.sessionId);
    this.log('event', event.event_type, event);
    const over = this.queue.length - this.config.maxQueueSize;
    if (over > 0) {
      this.queue.splice(0, over);
      this.stats.dropped += over;
    }
    if (this.config.flushIntervalMs === 0) void this.flush();
    else if (this.queue.length >= this.config.batchSize) void this.startDrain();
    else if (this.draining === undefined) this.armTimer();
  }

  /** Sends everything queued; resolves when it is acknowledged or given up on. */
  flush(): Promise<void> {
    this.sendAll = true;
    return this.startDrain();
  }

  private startDrain(): Promise<void> {
    if (this.timer !== undefined) {
      this.runtime.clearTimeout(this.timer);
      this.timer = undefined;
    }
    this.draining ??= this.drain().finally(() => {
      this.draining = undefined;
      this.sendAll = false;
      // A partial batch left behind by a size-triggered send waits for the interval.
      if (this.queue.length > 0) this.armTimer();
    });
    return this.draining;
  }

  private armTimer(): void {
    if (this.timer !== undefined) return;
    this.timer = this.runtime.setTimeout(() => {
      this.timer = undefined;
      void this.flush();
    }, this.config.flushIntervalMs);
  }

  /** Trackers register here to queue their end event before the page-exit flush. */
  onUnload(hook: UnloadHook): () => void {
    this.unloadHooks.add(hook);
    return () => this.unloadHooks.delete(hook);
  }

  /** Stops listening to the page; queued events are flushed first. */
  async destroy(): Promise<void> {
    await this.flush();
    this.removePageListeners();
  }

  private async drain(): Promise<void> {
    await this.viewerReady;
    while (this.queue.length >= (this.sendAll ? 1 : this.config.batchSize)) {
      const events = this.queue.splice(0, this.config.batchSize);
      await this.send(events);
    }
  }

  private serialise(events: WireEvent[]): string {
    for (const event of events) event.viewer_id ??= this.viewerId ?? 'unknown';
    return JSON.stringify({ events });
  }

  private async send(events: WireEvent[]): Promise<void> {
    const fetch = this.runtime.fetch;
    if (!fetch) {
      this.stats.failed += events.length;
      return;
    }
    // The body is built once: a retry sends the same event_ids, which the processor drops
    // if an earlier attempt did reach Kafka.
    const batch: Batch = { events, body: this.serialise(events), phase: 'sending', handedOff: false };
    this.inflight = batch;
    const headers: Record<string, string> = { 'Content-Type': 'application/json' };
    if (this.config.ingestKey) headers['X-API-Key'] = this.config.ingestKey;
    try {
      for (let attempt = 0; ; attempt++) {
        batch.phase = 'sending';
        let response: HttpResponse | undefined;
        try {
          response = await this.withTimeout(
            fetch(this.config.endpoint, {
              method: 'POST',
              headers,
              body: batch.body,
              // Lets a request started just before navigation finish; only small bodies fit.
              keepalive: batch.body.length < KEEPALIVE_BUDGET_BYTES / 4,
            }),
          );
        } catch (error) {
          this.log('send failed', error);
        }
        if (batch.handedOff) return;
        const status = response?.status;
        if (response && status !== undefined && status >= 200 && status < 300) {
          const { accepted, rejected } = await this.counts(response, events.length);
          this.stats.sent += accepted;
          this.stats.failed += rejected;
          return;
        }
        if (!isRetryable(status) || attempt >= this.config.maxRetries) {
          this.log('giving up on batch', status);
          this.stats.failed += events.length;
          return;
        }
        const delay =
          retryAfterMs(response?.headers.get('Retry-After') ?? null, this.runtime.now()) ??
          backoffDelay(attempt, () => this.runtime.random());
        batch.phase = 'waiting';
        await this.sleep(delay);
        if (batch.handedOff) return;
        this.stats.retried += 1;
      }
    } finally {
      if (this.inflight === batch) this.inflight = undefined;
    }
  }

  private async counts(response: HttpResponse, n: number): Promise<{ accepted: number; rejected: number }> {
    try {
      const body = JSON.parse(await response.text()) as { accepted?: unknown; rejected?: unknown };
      if (typeof body.accepted === 'number' && typeof body.rejected === 'number') {
        if (body.rejected > 0) this.log('collector rejected events', body);
        return { accepted: body.accepted, rejected: body.rejected };
      }
    } catch {
      // A 2xx without the collector's JSON (a proxy, say): the batch was taken.
    }
    return { accepted: n, rejected: 0 };
  }

  /**
   * A request without an answer is retried after REQUEST_TIMEOUT_MS: a hung connection
   * must not hold up the queue. If the first attempt did arrive, the processor drops the
   * copy by event_id.
   */
  private withTimeout<T>(request: Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const timer = this.runtime.setTimeout(
        () => reject(new Error(`no answer in ${REQUEST_TIMEOUT_MS} ms`)),
        REQUEST_TIMEOUT_MS,
      );
      request.then(
        (value) => {
          this.runtime.clearTimeout(timer);
          resolve(value);
        },
        (error: unknown) => {
          this.runtime.clearTimeout(timer);
          reject(error instanceof Error ? error : new Error(String(error)));
        },
      );
    });
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const handle = this.runtime.setTimeout(() => {
        this.wake = undefined;
        resolve();
      }, ms);
      // The page-exit path ends the wait early when it takes over the batch.
      this.wake = () => {
        this.runtime.clearTimeout(handle);
        this.wake = undefined;
        resolve();
      };
    });
  }

  private onPageHide(unloading: boolean): void {
    if (unloading) for (const hook of this.unloadHooks) hook();
    const pending: WireEvent[] = [];
    const batch = this.inflight;
    // A batch waiting to be retried would die with the page; one being sent may still
    // arrive, and if it does the processor drops the copy by event_id.
    if (batch && !batch.handedOff && (unloading || batch.phase === 'waiting')) {
      batch.handedOff = true;
      pending.push(...batch.events);
      this.wake?.();
    }
    pending.push(...this.queue);
    this.queue = [];
    if (pending.length > 0) this.beacon(pending);
  }

  /** Sends with `sendBeacon` (or a keepalive fetch): no custom headers, so the key goes in the query. */
  private beacon(events: WireEvent[]): void {
    const url = this.config.ingestKey
      ? `${this.config.endpoint}?key=${encodeURIComponent(this.config.ingestKey)}`
      : this.config.endpoint;
    let budget = KEEPALIVE_BUDGET_BYTES;
    let i = 0;
    while (i < events.length) {
      let chunk = events.slice(i, i + this.config.batchSize);
      let body = this.serialise(chunk);
      while (new TextEncoder().encode(body).length > budget && chunk.length > 1) {
        chunk = chunk.slice(0, Math.ceil(chunk.length / 2));
        body = this.serialise(chunk);
      }
      const bytes = new TextEncoder().encode(body).length;
      if (bytes > budget || !this.sendOnExit(url, body)) break;
      budget -= bytes;
      this.stats.sent += chunk.length;
      i += chunk.length;
    }
    if (i < events.length) {
      // No room left: if the page is only hidden, the normal path sends them later.
      this.queue.unshift(...events.slice(i));
    }
  }

  private sendOnExit(url: string, body: string): boolean {
    if (this.runtime.sendBeacon) {
      try {
        if (this.runtime.sendBeacon(url, body)) return true;
      } catch {
        // Fall through to fetch.
      }
    }
    if (!this.runtime.fetch) return false;
    // text/plain is a CORS-safelisted type: no preflight, which could not finish during unload.
    this.runtime
      .fetch(url, { method: 'POST', headers: { 'Content-Type': 'text/plain;charset=UTF-8' }, body, keepalive: true })
      .catch(() => undefined);
    return true;
  }

  log(...args: unknown[]): void {
    if (this.config.debug) console.debug('[OpenQoE]', ...args);
  }
}

/** Creates the page's client. `runtime` is for tests; pages leave it out. */
export function createClient(options: ClientOptions, runtime?: Runtime): Client {
  return new Client(options, runtime);
}
