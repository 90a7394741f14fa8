/** What leaves the page: URLs without query strings or fragments, a salted viewer hash. */

/**
 * `scheme://host/path` of a URL: query strings and fragments carry signed tokens and
 * user data, so they are never sent. Relative URLs keep their path only; blob: and
 * data: URLs (MSE object URLs, inline media) are reduced to their scheme.
 */
export function stripUrl(raw: string | undefined | null): string | undefined {
  if (typeof raw !== 'string' || raw === '') return undefined;
  const scheme = /^([a-z][a-z0-9+.-]*):/i.exec(raw)?.[1]?.toLowerCase();
  if (scheme === 'blob' || scheme === 'data' || scheme === 'mediasource') return `${scheme}:`;
  try {
    const url = new URL(raw);
    return `${url.protocol}//${url.host}${url.pathname}`;
  } catch {
    return raw.split(/[?#]/, 1)[0];
  }
}

/** SHA-256 hex of the viewer id salted with the organisation, so ids are not linkable across orgs. */
export function hashViewerId(
  sha256Hex: (text: string) => Promise<string>,
  orgId: string,
  viewerId: string,
): Promise<string> {
  return sha256Hex(`openqoe:${orgId}:${viewerId}`);
}

/** Recursively strips query strings from string values under keys that name URLs. */
export function stripUrlsIn(value: unknown, depth = 0): unknown {
  if (depth > 4 || value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) return value.slice(0, 20).map((v) => stripUrlsIn(v, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [key, item] of Object.entries(value as Record<string, unknown>)) {
    if (typeof item === 'string' && /url|uri|src/i.test(key)) out[key] = stripUrl(item);
    else if (typeof item === 'function') continue;
    else out[key] = stripUrlsIn(item, depth + 1);
  }
  return out;
}
