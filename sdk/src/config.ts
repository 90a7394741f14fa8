/** The client configuration: defaults, and validation that fails early with a clear message. */

export interface ClientOptions {
  /** Collector base URL; events go to `${collectorUrl}/v1/events`. */
  collectorUrl: string;
  /** Public ingest key (it is visible in the page anyway). */
  ingestKey?: string;
  orgId: string;
  env?: string;
  appName?: string;
  appVersion?: string;
  playerId?: string;
  /** Raw viewer id; only its salted SHA-256 is sent. */
  viewerId?: string;
  heartbeatIntervalMs?: number;
  pausedHeartbeatIntervalMs?: number;
  batchSize?: number;
  flushIntervalMs?: number;
  maxRetries?: number;
  maxQueueSize?: number;
  sendTitles?: boolean;
  debug?: boolean;
}

export interface ClientConfig {
  readonly collectorUrl: string;
  readonly endpoint: string;
  readonly ingestKey: string | undefined;
  readonly orgId: string;
  readonly env: string;
  readonly appName: string | undefined;
  readonly appVersion: string | undefined;
  readonly playerId: string | undefined;
  readonly viewerId: string | undefined;
  readonly heartbeatIntervalMs: number;
  readonly pausedHeartbeatIntervalMs: number;
  readonly batchSize: number;
  readonly flushIntervalMs: number;
  readonly maxRetries: number;
  readonly maxQueueSize: number;
  readonly sendTitles: boolean;
  readonly debug: boolean;
}

/**
 * The processor drops an event whose event_id is among the last 32 of its view
 * (processors/view.py RECENT_IDS); a retried batch must fit in that window.
 */
export const MAX_BATCH_SIZE = 32;

export class ConfigError extends Error {
  constructor(message: string) {
    super(`OpenQoE: ${message}`);
    this.name = 'ConfigError';
  }
}

function intIn(
  options: ClientOptions,
  key: keyof ClientOptions,
  fallback: number,
  min: number,
  max: number,
): number {
  const value = options[key];
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new ConfigError(`${key} must be an integer between ${min} and ${max}, got ${String(value)}`);
  }
  return value;
}

function optionalString(options: ClientOptions, key: keyof ClientOptions, max: number): string | undefined {
  const value = options[key];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'string' || value.length === 0 || value.length > max) {
    throw new ConfigError(`${key} must be a non-empty string of at most ${max} characters`);
  }
  return value;
}

function flag(options: ClientOptions, key: keyof ClientOptions): boolean {
  const value = options[key];
  if (value === undefined) return false;
  if (typeof value !== 'boolean') throw new ConfigError(`${key} must be true or false`);
  return value;
}

export function resolveConfig(options: ClientOptions): ClientConfig {
  if (typeof options !== 'object' || options === null) {
    throw new ConfigError('createClient needs an options object');
  }
  const raw = options.collectorUrl;
  if (typeof raw !== 'string' || raw === '') throw new ConfigError('collectorUrl is required');
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new ConfigError(`collectorUrl is not an absolute URL: ${raw}`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new ConfigError('collectorUrl must be an http: or https: URL');
  }
  if (url.search || url.hash) throw new ConfigError('collectorUrl must not have a query string or fragment');
  const collectorUrl = url.href.replace(/\/+$/, '');
  const orgId = optionalString(options, 'orgId', 100);
  if (orgId === undefined) throw new ConfigError('orgId is required');
  const heartbeatIntervalMs = intIn(options, 'heartbeatIntervalMs', 10_000, 1000, 300_000);
  return {
    collectorUrl,
    endpoint: `${collectorUrl}/v1/events`,
    ingestKey: optionalString(options, 'ingestKey', 256),
    orgId,
    env: optionalString(options, 'env', 256) ?? 'prod',
    appName: optionalString(options, 'appName', 256),
    appVersion: optionalString(options, 'appVersion', 256),
    playerId: optionalString(options, 'playerId', 128),
    viewerId: optionalString(options, 'viewerId', 4096),
    heartbeatIntervalMs,
    pausedHeartbeatIntervalMs: intIn(
      options,
      'pausedHeartbeatIntervalMs',
      Math.max(30_000, heartbeatIntervalMs),
      heartbeatIntervalMs,
      600_000,
    ),
    batchSize: intIn(options, 'batchSize', 10, 1, MAX_BATCH_SIZE),
    flushIntervalMs: intIn(options, 'flushIntervalMs', 5000, 0, 60_000),
    maxRetries: intIn(options, 'maxRetries', 6, 0, 20),
    maxQueueSize: intIn(options, 'maxQueueSize', 1000, MAX_BATCH_SIZE, 100_000),
    sendTitles: flag(options, 'sendTitles'),
    debug: flag(options, 'debug'),
  };
}
