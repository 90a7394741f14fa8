/** A fake browser for the core: a clock the test advances, a scripted fetch, a page lifecycle. */
import { createHash } from 'node:crypto';
import type { HttpRequest, HttpResponse, Runtime, StorageLike } from '../src/runtime.js';

export const START_MS = Date.UTC(2026, 11, 2, 12, 0, 0);

/** Lets pending promise callbacks run (several hops of awaits). */
export async function settle(): Promise<void> {
  for (let i = 0; i < 20; i++) await new Promise<void>((resolve) => setImmediate(resolve));
}

export class FakeClock {
  now = START_MS;
  private timers: { id: number; at: number; fn: () => void }[] = [];
  private nextId = 1;

  setTimeout(fn: () => void, ms: number): number {
    const id = this.nextId++;
    this.timers.push({ id, at: this.now + Math.max(0, ms), fn });
    return id;
  }

  clearTimeout(id: unknown): void {
    this.timers = this.timers.filter((t) => t.id !== id);
  }

  pending(): number[] {
    return this.timers.map((t) => t.at - this.now).sort((a, b) => a - b);
  }

  /** Moves time forward, running each timer at its due time. */
  async advance(ms: number): Promise<void> {
    const target = this.now + ms;
    await settle();
    for (;;) {
      const due = this.timers.filter((t) => t.at <= target).sort((a, b) => a.at - b.at || a.id - b.id)[0];
      if (!due) break;
      this.timers = this.timers.filter((t) => t !== due);
      this.now = Math.max(this.now, due.at);
      due.fn();
      await settle();
    }
    this.now = target;
    await settle();
  }
}

export interface Sent {
  at: number;
  url: string;
  init: HttpRequest;
  events: Record<string, unknown>[];
}

export type Reply = { status: number; headers?: Record<string, string>; body?: string } | 'network-error';

export class FakeFetch {
  readonly requests: Sent[] = [];
  private replies: Reply[] = [];
  /** Requests not answered yet resolve when release() is called (when hold is on). */
  hold = false;
  private held: (() => void)[] = [];

  constructor(private readonly clock: FakeClock) {}

  reply(...replies: Reply[]): void {
    this.replies.push(...replies);
  }

  release(): void {
    const held = this.held;
    this.held = [];
    for (const fn of held) fn();
  }

  readonly fetch = (url: string, init: HttpRequest): Promise<HttpResponse> => {
    const parsed = JSON.parse(init.body) as { events: Record<string, unknown>[] };
    this.requests.push({ at: this.clock.now, url, init, events: parsed.events });
    const reply = this.replies.shift() ?? { status: 202 };
    const answer = (): Promise<HttpResponse> => {
      if (reply === 'network-error') return Promise.reject(new TypeError('Failed to fetch'));
      const headers = reply.headers ?? {};
      const body =
        reply.body ?? JSON.stringify({ accepted: parsed.events.length, rejected: 0, errors: [] });
      return Promise.resolve({
        status: reply.status,
        headers: { get: (name: string) => headers[name] ?? headers[name.toLowerCase()] ?? null },
        text: () => Promise.resolve(body),
      });
    };
    if (!this.hold) return answer();
    return new Promise((resolve, reject) => {
      this.held.push(() => answer().then(resolve, reject));
    });
  };
}

export class MemoryStorage implements StorageLike {
  private readonly items = new Map<string, string>();
  getItem(key: string): string | null {
    return this.items.get(key) ?? null;
  }
  setItem(key: string, value: string): void {
    this.items.set(key, value);
  }
}

export interface FakePage {
  runtime: Runtime;
  clock: FakeClock;
  fetch: FakeFetch;
  beacons: { url: string; body: string }[];
  hide(unloading: boolean): void;
  beaconAccepts: boolean;
}

export function fakePage(overrides: Partial<Runtime> = {}, sessionStorage = new MemoryStorage()): FakePage {
  const clock = new FakeClock();
  const fetch = new FakeFetch(clock);
  let uuid = 0;
  const listeners: ((unloading: boolean) => void)[] = [];
  const page: FakePage = {
    clock,
    fetch,
    beacons: [],
    beaconAccepts: true,
    hide: (unloading) => {
      for (const fn of listeners) fn(unloading);
    },
    runtime: {
      now: () => clock.now,
      monotonic: () => clock.now - START_MS,
      setTimeout: (fn, ms) => clock.setTimeout(fn, ms),
      clearTimeout: (h) => clock.clearTimeout(h),
      random: () => 0.5,
      randomUUID: () => `00000000-0000-4000-8000-${String(++uuid).padStart(12, '0')}`,
      sha256Hex: (text) => Promise.resolve(createHash('sha256').update(text).digest('hex')),
      fetch: fetch.fetch,
      sendBeacon: (url, body) => {
        if (!page.beaconAccepts) return false;
        page.beacons.push({ url, body });
        return true;
      },
      sessionStorage,
      localStorage: new MemoryStorage(),
      userAgent: 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.0.0 Safari/537.36',
      maxTouchPoints: 0,
      onPageHide: (fn) => {
        listeners.push(fn);
        return () => listeners.splice(listeners.indexOf(fn), 1);
      },
      ...overrides,
    },
  };
  return page;
}

/** A player the test drives by hand. */
export class FakeProbe {
  position = 0;
  duration: number | undefined = 60_000;
  buffer: number | undefined = 4000;
  dropped: number | undefined = 0;
  frames: number | undefined = 0;
  src = 'https://cdn.example.com/v/master.m3u8?token=secret#t=10';
  positionMs = (): number | undefined => this.position;
  durationMs = (): number | undefined => this.duration;
  bufferMs = (): number | undefined => this.buffer;
  droppedFrames = (): number | undefined => this.dropped;
  decodedFrames = (): number | undefined => this.frames;
  sourceUrl = (): string | undefined => this.src;
}
