/** Session and viewer identity. */
import type { Runtime } from './runtime.js';

export const SESSION_KEY = 'openqoe_session';
export const VIEWER_KEY = 'openqoe_viewer_id';
/** A session ends after this long without events, as in common web analytics. */
export const SESSION_IDLE_MS = 30 * 60 * 1000;

/**
 * The page session id: shared by every view in the tab (sessionStorage survives
 * reloads and same-tab navigations), renewed after 30 minutes without activity.
 */
export function sessionId(runtime: Runtime): string {
  const storage = runtime.sessionStorage;
  const now = runtime.now();
  try {
    const stored = storage?.getItem(SESSION_KEY);
    if (stored) {
      const { id, last } = JSON.parse(stored) as { id?: unknown; last?: unknown };
      if (typeof id === 'string' && typeof last === 'number' && now - last < SESSION_IDLE_MS) {
        storage?.setItem(SESSION_KEY, JSON.stringify({ id, last: now }));
        return id;
      }
    }
  } catch {
    // Corrupt or inaccessible storage: start a new session.
  }
  const id = runtime.randomUUID();
  try {
    storage?.setItem(SESSION_KEY, JSON.stringify({ id, last: now }));
  } catch {
    // Quota or privacy mode: the id lives in memory only.
  }
  return id;
}

/** Records activity so an active session is not renewed. */
export function touchSession(runtime: Runtime, id: string): void {
  try {
    runtime.sessionStorage?.setItem(SESSION_KEY, JSON.stringify({ id, last: runtime.now() }));
  } catch {
    // See sessionId.
  }
}

/** A random per-browser id when the integrator gives none (kept in localStorage). */
export function anonymousViewerId(runtime: Runtime): string {
  try {
    const stored = runtime.localStorage?.getItem(VIEWER_KEY);
    if (stored) return stored;
    const id = runtime.randomUUID();
    runtime.localStorage?.setItem(VIEWER_KEY, id);
    return id;
  } catch {
    return runtime.randomUUID();
  }
}
