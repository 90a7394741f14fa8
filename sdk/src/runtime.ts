/**
 * Everything the SDK takes from the browser, behind one interface, so the core runs
 * unchanged under unit tests with a fake clock, a fake fetch and a fake page lifecycle.
 */

export interface StorageLike {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
}

export interface HttpResponse {
  status: number;
  headers: { get(name: string): string | null };
  text(): Promise<string>;
}

export interface HttpRequest {
  method: 'POST';
  headers: Record<string, string>;
  body: string;
  keepalive?: boolean;
}

export type Fetch = (url: string, init: HttpRequest) => Promise<HttpResponse>;

export interface UserAgentDataLike {
  brands?: { brand: string; version: string }[];
  mobile?: boolean;
  platform?: string;
  getHighEntropyValues?(hints: string[]): Promise<Record<string, unknown>>;
}

export interface Runtime {
  /** Wall clock, Unix ms: event times. */
  now(): number;
  /** Monotonic ms: durations, immune to wall-clock steps. */
  monotonic(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
  random(): number;
  randomUUID(): string;
  sha256Hex(text: string): Promise<string>;
  fetch?: Fetch;
  sendBeacon?: (url: string, body: string) => boolean;
  sessionStorage?: StorageLike;
  localStorage?: StorageLike;
  userAgent: string;
  userAgentData?: UserAgentDataLike;
  maxTouchPoints: number;
  /**
   * Calls `onHide(unloading)` when the page is hidden (unloading=false) or unloaded
   * (unloading=true). Returns a function that removes the listeners.
   */
  onPageHide(onHide: (unloading: boolean) => void): () => void;
}

function safeStorage(get: () => Storage | undefined): StorageLike | undefined {
  try {
    const storage = get();
    if (!storage) return undefined;
    // Safari private mode and sandboxed iframes expose storage that throws on write.
    storage.setItem('openqoe_probe', '1');
    return storage;
  } catch {
    return undefined;
  }
}

function fallbackUUID(random: () => number): string {
  const hex = [...Array(32)].map(() => Math.floor(random() * 16).toString(16));
  hex[12] = '4';
  hex[16] = ((parseInt(hex[16] ?? '0', 16) & 0x3) | 0x8).toString(16);
  const s = hex.join('');
  return `${s.slice(0, 8)}-${s.slice(8, 12)}-${s.slice(12, 16)}-${s.slice(16, 20)}-${s.slice(20)}`;
}

/** The runtime of a real browser page. */
export function browserRuntime(): Runtime {
  const g = globalThis as typeof globalThis & { document?: Document; navigator?: Navigator };
  const nav = g.navigator as (Navigator & { userAgentData?: UserAgentDataLike }) | undefined;
  const perf = g.performance;
  const cryptoObj = g.crypto as Crypto | undefined;
  return {
    now: () => Date.now(),
    monotonic: () => (perf ? perf.now() : Date.now()),
    setTimeout: (fn, ms) => g.setTimeout(fn, ms),
    clearTimeout: (handle) => g.clearTimeout(handle as ReturnType<typeof setTimeout>),
    random: () => Math.random(),
    randomUUID: () =>
      cryptoObj && typeof cryptoObj.randomUUID === 'function'
        ? cryptoObj.randomUUID()
        : fallbackUUID(Math.random),
    sha256Hex: async (text) => {
      if (!cryptoObj?.subtle) throw new Error('SubtleCrypto is not available (needs HTTPS or localhost)');
      const digest = await cryptoObj.subtle.digest('SHA-256', new TextEncoder().encode(text));
      return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, '0')).join('');
    },
    fetch: typeof g.fetch === 'function' ? (url, init) => g.fetch(url, init) : undefined,
    sendBeacon:
      nav && typeof nav.sendBeacon === 'function'
        ? (url, body) => nav.sendBeacon(url, new Blob([body], { type: 'text/plain' }))
        : undefined,
    sessionStorage: safeStorage(() => g.sessionStorage),
    localStorage: safeStorage(() => g.localStorage),
    userAgent: nav?.userAgent ?? '',
    userAgentData: nav?.userAgentData,
    maxTouchPoints: nav?.maxTouchPoints ?? 0,
    onPageHide(onHide) {
      const doc = g.document;
      if (!doc || typeof g.addEventListener !== 'function') return () => undefined;
      const visibility = (): void => {
        if (doc.visibilityState === 'hidden') onHide(false);
      };
      const pagehide = (): void => onHide(true);
      doc.addEventListener('visibilitychange', visibility);
      g.addEventListener('pagehide', pagehide);
      return () => {
        doc.removeEventListener('visibilitychange', visibility);
        g.removeEventListener('pagehide', pagehide);
      };
    },
  };
}
