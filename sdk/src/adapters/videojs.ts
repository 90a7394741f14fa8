/**
 * Video.js (with its VHS engine for HLS and DASH): media events from the tech's
 * `<video>`, errors from the player (VHS reports them there), renditions from
 * `vhs.playlists.media()` on `mediachange`: the playlist now in use, its declared
 * BANDWIDTH. Video.js's quality-level list says which levels are *enabled*, not which
 * one plays, so it is not used.
 */
import type { Client } from '../client.js';
import { listenMedia, mediaProbe, renditionOnScreen, withCleanup, wrapMethod } from '../media.js';
import { type ErrorFamily, type Rendition, type TrackOptions, type Tracker, ViewTracker } from '../tracker.js';

interface VhsPlaylist {
  attributes?: { BANDWIDTH?: number; RESOLUTION?: { width: number; height: number }; 'FRAME-RATE'?: number };
}

interface Vhs {
  playlists?: {
    media(): VhsPlaylist | undefined;
    on(type: string, fn: () => void): void;
    off?(type: string, fn: () => void): void;
  };
}

interface VjsTech {
  el(): Element;
  vhs?: Vhs;
}

/** The part of a Video.js player the adapter uses. */
export interface VideoJsPlayerLike {
  on(type: string, fn: () => void): void;
  off(type: string, fn: () => void): void;
  tech(safety?: unknown): VjsTech | undefined;
  error(): { code: number; message?: string; metadata?: unknown } | null;
  currentSrc?(): string;
}

const CODE_FAMILY: Record<number, ErrorFamily> = { 1: 'other', 2: 'network', 3: 'decode', 4: 'media', 5: 'drm' };

export function videoJsErrorFamily(code: number, message = ''): ErrorFamily {
  if (/playlist|manifest/i.test(message)) return 'manifest';
  return CODE_FAMILY[code] ?? 'other';
}

function techOf(player: VideoJsPlayerLike): VjsTech | undefined {
  // Video.js asks plugins to acknowledge that the tech is internal API.
  return player.tech({ IWillNotUseThisInPlugins: true });
}

function playlistRendition(vhs: Vhs | undefined): Rendition | undefined {
  const attributes = vhs?.playlists?.media()?.attributes;
  if (!attributes) return undefined;
  return {
    bitrate: attributes.BANDWIDTH,
    width: attributes.RESOLUTION?.width,
    height: attributes.RESOLUTION?.height,
    framerate: attributes['FRAME-RATE'],
  };
}

export function trackVideoJs(client: Client, player: VideoJsPlayerLike, options: TrackOptions = {}): Tracker {
  const tech = techOf(player);
  const video = tech?.el();
  if (!(video instanceof HTMLVideoElement)) {
    throw new Error('OpenQoE: trackVideoJs needs a Video.js player with the html5 tech');
  }
  const version = (globalThis as { videojs?: { VERSION?: string } }).videojs?.VERSION;
  const tracker = new ViewTracker(
    client,
    { name: 'video.js', version },
    mediaProbe(video, {
      sourceUrl: () => player.currentSrc?.() || video.currentSrc || undefined,
      rendition: () => playlistRendition(techOf(player)?.vhs),
    }),
    options,
  );

  let hooked: Vhs | undefined;
  const onScreen = renditionOnScreen(video, tracker);
  const onMediaChange = (): void => {
    const rendition = playlistRendition(hooked);
    if (rendition) onScreen.announce(rendition);
  };
  const hookVhs = (): void => {
    const vhs = techOf(player)?.vhs;
    if (!vhs?.playlists || vhs === hooked) return;
    hooked?.playlists?.off?.('mediachange', onMediaChange);
    hooked = vhs;
    vhs.playlists.on('mediachange', onMediaChange);
    onMediaChange();
  };
  const onError = (): void => {
    const error = player.error();
    if (!error) return;
    tracker.error({
      fatal: true,
      family: videoJsErrorFamily(error.code, error.message),
      code: error.code,
      message: error.message,
    });
  };
  let source = player.currentSrc?.() || undefined;
  const onLoadStart = (): void => {
    const next = player.currentSrc?.() || undefined;
    if (source !== undefined && next !== undefined && next !== source) tracker.sourceChanged();
    source = next ?? source;
    hookVhs();
  };
  const playerEvents: [string, () => void][] = [
    ['loadstart', onLoadStart],
    ['loadedmetadata', hookVhs],
    ['error', onError],
  ];
  for (const [name, fn] of playerEvents) player.on(name, fn);
  hookVhs();
  // player.play() waits for VHS to load its playlists before it calls the element's
  // play(), so the element's `play` comes late: the play intent is the player's play().
  const media = listenMedia(video, tracker, { errors: false, sourceChanges: false });
  const restorePlay = wrapMethod(player, 'play', (play) =>
    function (this: unknown, ...args: unknown[]) {
      media.noteIntent();
      const result = play.apply(this, args);
      media.noteIntent(result);
      return result;
    },
  );
  return withCleanup(tracker, media.off, onScreen.off, restorePlay, () => {
    for (const [name, fn] of playerEvents) player.off(name, fn);
    hooked?.playlists?.off?.('mediachange', onMediaChange);
  });
}
