/** hls.js: renditions from LEVEL_SWITCHED (the level now playing, its declared BANDWIDTH). */
import type { Client } from '../client.js';
import { listenMedia, mediaProbe, withCleanup } from '../media.js';
import { type ErrorFamily, type Rendition, type TrackOptions, type Tracker, ViewTracker } from '../tracker.js';

interface HlsLevel {
  bitrate: number;
  width?: number;
  height?: number;
  frameRate?: number | string;
}

interface HlsErrorData {
  type: string;
  details: string;
  fatal: boolean;
  error?: Error;
  reason?: string;
  url?: string;
  frag?: { url?: string };
  response?: { code?: number };
}

/** The part of an `Hls` instance the adapter uses. */
export interface HlsLike {
  levels: HlsLevel[];
  /** The level playing now (-1 before the first LEVEL_SWITCHED). */
  currentLevel: number;
  url?: string | null;
  on(event: string, listener: (event: string, data: never) => void): void;
  off(event: string, listener: (event: string, data: never) => void): void;
  constructor: { version?: string };
}

// Hls.Events values, stable across hls.js 1.x.
const LEVEL_SWITCHED = 'hlsLevelSwitched';
const ERROR = 'hlsError';
const MANIFEST_PARSED = 'hlsManifestParsed';
const MANIFEST_LOADING = 'hlsManifestLoading';
const STALL_REPORTS = new Set(['bufferStalledError', 'bufferNudgeOnStall', 'bufferSeekOverHole']);

export function hlsErrorFamily(data: Pick<HlsErrorData, 'type' | 'details'>): ErrorFamily {
  if (/^(manifest|level)/i.test(data.details)) return 'manifest';
  if (data.type === 'networkError') return 'network';
  if (data.type === 'keySystemError') return 'drm';
  if (data.type === 'mediaError' || data.type === 'muxError') return 'media';
  return 'other';
}

function levelRendition(level: HlsLevel | undefined): Rendition | undefined {
  if (!level) return undefined;
  const framerate = typeof level.frameRate === 'string' ? parseFloat(level.frameRate) : level.frameRate;
  return { bitrate: level.bitrate, width: level.width, height: level.height, framerate: framerate || undefined };
}

export function trackHlsJs(client: Client, hls: HlsLike, video: HTMLVideoElement, options: TrackOptions = {}): Tracker {
  const tracker = new ViewTracker(
    client,
    { name: 'hls.js', version: hls.constructor.version },
    mediaProbe(video, {
      sourceUrl: () => hls.url ?? undefined,
      rendition: () => (hls.currentLevel >= 0 ? levelRendition(hls.levels[hls.currentLevel]) : undefined),
    }),
    options,
  );
  let manifestUrl: string | undefined = hls.url ?? undefined;
  const listeners: [string, (event: string, data: never) => void][] = [
    [
      LEVEL_SWITCHED,
      (_e, data: { level: number }) => {
        const rendition = levelRendition(hls.levels[data.level]);
        if (rendition) tracker.rendition(rendition);
      },
    ],
    [
      ERROR,
      (_e, data: HlsErrorData) => {
        // Reports of what hls.js does about a stall (the stall itself is a stall_start).
        if (!data.fatal && STALL_REPORTS.has(data.details)) return;
        tracker.error({
          fatal: data.fatal,
          family: hlsErrorFamily(data),
          code: data.details,
          message: data.error?.message ?? data.reason,
          context: {
            type: data.type,
            details: data.details,
            url: data.url ?? data.frag?.url,
            response_code: data.response?.code,
          },
        });
      },
    ],
    [MANIFEST_PARSED, () => tracker.ready()],
    [
      MANIFEST_LOADING,
      (_e, data: { url: string }) => {
        if (manifestUrl !== undefined && data.url !== manifestUrl) tracker.sourceChanged();
        manifestUrl = data.url;
      },
    ],
  ];
  for (const [name, fn] of listeners) hls.on(name, fn);
  // hls.js reports its own errors with type and fatality; the element's would duplicate them.
  const media = listenMedia(video, tracker, { errors: false });
  return withCleanup(tracker, media.off, () => {
    for (const [name, fn] of listeners) hls.off(name, fn);
  });
}
