import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { trackDashJs } from '../src/adapters/dashjs.js';
import { trackHtml5 } from '../src/adapters/html5.js';
import { trackVideoJs, videoJsErrorFamily } from '../src/adapters/videojs.js';
import { Client, type WireEvent } from '../src/client.js';
import { fakePage, settle } from './fakes.js';

type FrameCallback = (now: number, meta: { expectedDisplayTime: number; width: number; height: number }) => void;

/** Just enough of a `<video>` for the adapters: events, sizes, presented frames. */
class FakeVideo extends EventTarget {
  currentTime = 0;
  duration = 24;
  paused = true;
  ended = false;
  seeking = false;
  readyState = 0;
  videoWidth = 640;
  videoHeight = 360;
  playbackRate = 1;
  buffered = { length: 0, start: () => 0, end: () => 0 };
  currentSrc = '';
  src = '';
  autoplay = false;
  preload = 'auto';
  error = null;
  baseURI = 'http://127.0.0.1/';
  private callbacks: FrameCallback[] = [];

  getAttribute(): string | null {
    return null;
  }

  play(): Promise<void> {
    this.paused = false;
    this.fire('play');
    return Promise.resolve();
  }

  requestVideoFrameCallback(cb: FrameCallback): number {
    this.callbacks.push(cb);
    return this.callbacks.length;
  }

  /** A frame of this size is displayed at `at`; `resize` first if the size changed. */
  present(at: number, width = this.videoWidth, height = this.videoHeight): void {
    const callbacks = this.callbacks.splice(0);
    for (const cb of callbacks) cb(at, { expectedDisplayTime: at, width, height });
  }

  /** The decoder output a frame of a new size (before it is displayed). */
  decodeSize(width: number, height: number): void {
    this.videoWidth = width;
    this.videoHeight = height;
    this.fire('resize');
  }

  getVideoPlaybackQuality(): { totalVideoFrames: number; droppedVideoFrames: number } {
    return { totalVideoFrames: 0, droppedVideoFrames: 0 };
  }

  fire(type: string): void {
    this.dispatchEvent(new Event(type));
  }
}

const globals = globalThis as Record<string, unknown>;
before(() => {
  globals.HTMLVideoElement = FakeVideo;
});
after(() => {
  delete globals.HTMLVideoElement;
});

function setup() {
  const page = fakePage();
  const client = new Client(
    { collectorUrl: 'http://127.0.0.1:8080', ingestKey: 'k', orgId: 'demo', flushIntervalMs: 1000 },
    page.runtime,
  );
  const video = new FakeVideo();
  const sent = async (): Promise<WireEvent[]> => {
    await client.flush();
    return page.fetch.requests.flatMap((r) => r.events as WireEvent[]);
  };
  const ofType = async (type: string): Promise<WireEvent[]> => (await sent()).filter((e) => e.event_type === type);
  return { page, client, video, sent, ofType };
}

const data = (e: WireEvent | undefined): Record<string, unknown> => (e?.data ?? {}) as Record<string, unknown>;

/** Plays the fake element to its first presented frame. */
async function start(video: FakeVideo): Promise<void> {
  await video.play();
  video.readyState = 4;
  video.fire('playing');
  video.present(100);
  await settle();
}

class FakeEmitter {
  private readonly listeners = new Map<string, Set<(...args: never[]) => void>>();
  on(type: string, fn: (...args: never[]) => void): void {
    if (!this.listeners.has(type)) this.listeners.set(type, new Set());
    this.listeners.get(type)!.add(fn);
  }
  off(type: string, fn: (...args: never[]) => void): void {
    this.listeners.get(type)?.delete(fn);
  }
  emit(type: string, ...args: unknown[]): void {
    for (const fn of this.listeners.get(type) ?? []) (fn as (...a: unknown[]) => void)(...args);
  }
}

describe('element seeks', () => {
  it('takes a start-gap jump right after the first frame (no timeupdate yet) for the player, not a seek', async () => {
    const t = setup();
    const tracker = trackHtml5(t.client, t.video as unknown as HTMLVideoElement);
    await start(t.video);
    t.video.seeking = true;
    t.video.currentTime = 0.195; // hls.js over a hole at the start
    t.video.fire('seeking');
    t.video.seeking = false;
    t.video.fire('seeked');
    assert.deepEqual(await t.ofType('seek'), []);
    t.video.currentTime = 2.1;
    t.video.fire('timeupdate');
    t.video.seeking = true;
    t.video.currentTime = 14;
    t.video.fire('seeking');
    t.video.seeking = false;
    t.video.fire('seeked');
    const seeks = await t.ofType('seek');
    assert.deepEqual(seeks.map((e) => [data(e).from, data(e).to]), [[2100, 14_000]]);
    await tracker.destroy();
  });
});

describe('dash.js adapter', () => {
  const rep360 = { bandwidth: 700_000, width: 640, height: 360 };
  const rep720 = { bandwidth: 2_000_000, width: 1280, height: 720 };

  it('reports an up-switch when its first frame is displayed, not when dash.js says rendered', async () => {
    const t = setup();
    const player = new FakeEmitter();
    const tracker = trackDashJs(t.client, player, t.video as unknown as HTMLVideoElement);
    player.emit('qualityChangeRendered', { mediaType: 'video', newRepresentation: rep360 });
    await start(t.video);
    // Fast switching: the 720p segment over the position has loaded, 360p frames still show.
    player.emit('qualityChangeRendered', { mediaType: 'video', newRepresentation: rep720 });
    t.video.present(200);
    t.video.decodeSize(1280, 720); // decoded, queued behind the 360p frames
    t.video.present(240, 640, 360);
    assert.deepEqual(await t.ofType('quality_change'), []);
    t.video.present(280, 1280, 720);
    const [change] = await t.ofType('quality_change');
    assert.deepEqual(
      [data(change).previous_bitrate, data(change).new_bitrate],
      [700_000, 2_000_000],
    );
    await tracker.destroy();
  });

  it('takes a switch to a rendition of the same size at once', async () => {
    const t = setup();
    const player = new FakeEmitter();
    const tracker = trackDashJs(t.client, player, t.video as unknown as HTMLVideoElement);
    player.emit('qualityChangeRendered', { mediaType: 'video', newRepresentation: rep360 });
    await start(t.video);
    player.emit('qualityChangeRendered', { mediaType: 'video', newRepresentation: { ...rep360, bandwidth: 500_000 } });
    const [change] = await t.ofType('quality_change');
    assert.equal(data(change).new_bitrate, 500_000);
    await tracker.destroy();
  });
});

describe('Video.js adapter errors', () => {
  it('names the family from the error metadata of Video.js 8', () => {
    const failed = { errorType: 'networkrequestfailed', requestType: 'hls-playlist' };
    assert.equal(videoJsErrorFamily(2, 'x', failed), 'manifest');
    assert.equal(videoJsErrorFamily(2, 'x', { errorType: 'networkbadstatus', requestType: 'segment' }), 'network');
    assert.equal(videoJsErrorFamily(3, 'x', { errorType: 'streaminghlsplaylistparsererror' }), 'manifest');
    assert.equal(videoJsErrorFamily(3, 'x', { errorType: 'streamingfailedtoappendsegment' }), 'media');
    assert.equal(videoJsErrorFamily(3, 'x', { errorType: 'streamingfailedtodecryptsegment' }), 'drm');
    assert.equal(videoJsErrorFamily(4, 'The media could not be loaded'), 'media');
    assert.equal(videoJsErrorFamily(2, 'HLS playlist request error at URL: x'), 'manifest');
  });

  function fakeVideoJs(video: FakeVideo) {
    const loader = Object.assign(new FakeEmitter(), {
      error: undefined as { code?: number; status?: number; message?: string; metadata?: object } | undefined,
      media: () => undefined,
    });
    const events = new FakeEmitter();
    let error: { code: number; message?: string; metadata: null } | null = null;
    const player = {
      on: (type: string, fn: () => void) => events.on(type, fn),
      off: (type: string, fn: () => void) => events.off(type, fn),
      tech: () => ({ el: () => video as unknown as Element, vhs: { playlists: loader } }),
      error: () => error,
      currentSrc: () => 'http://127.0.0.1/master.m3u8',
      // VHS calls the element's play() once its playlists are loaded.
      play: () => undefined,
      fail(next: { code: number; message?: string }) {
        error = { ...next, metadata: null }; // Video.js's MediaError default
        events.emit('error');
      },
    };
    return { loader, player };
  }

  it('reports a failed master playlist as manifest when the element says "not supported"', async () => {
    const t = setup();
    const { loader, player } = fakeVideoJs(t.video);
    const tracker = trackVideoJs(t.client, player);
    loader.error = {
      status: 404,
      code: 2,
      message: 'HLS playlist request error at URL: http://127.0.0.1/master.m3u8.',
      metadata: { errorType: 'networkrequestfailed', requestType: 'hls-playlist' },
    };
    loader.emit('error');
    // The MediaSource was open: VHS ended the stream, the element failed with code 4.
    player.fail({ code: 4, message: 'MEDIA_ERR_SRC_NOT_SUPPORTED' });
    const [error] = await t.ofType('error');
    assert.equal(data(error).error_family, 'manifest');
    assert.equal(data(error).fatal, true);
    await tracker.destroy();
  });

  it('starts the view at player.play() when the playlist fails before the element plays, once', async () => {
    const t = setup();
    const { loader, player } = fakeVideoJs(t.video);
    const tracker = trackVideoJs(t.client, player);
    player.play();
    await t.page.clock.advance(120);
    loader.error = { status: 404, code: 2, message: 'HLS playlist request error at URL: x' };
    // VHS's own error (the MediaSource was not open yet): on the player before the loader's listeners.
    player.fail({ code: 2, message: 'HLS playlist request error at URL: x' });
    loader.emit('error');
    await t.video.play(); // the element's play, requested before the failure
    const events = await t.sent();
    assert.deepEqual(events.map((e) => e.event_type), ['viewstart', 'error']);
    assert.equal(new Set(events.map((e) => e.view_id)).size, 1);
    assert.equal((events[1]!.event_time as number) - (events[0]!.event_time as number), 120);
    assert.equal(data(events[1]).error_family, 'manifest');
    await tracker.destroy();
  });

  it('keeps the element error once the playlist loaded again', async () => {
    const t = setup();
    const { loader, player } = fakeVideoJs(t.video);
    const tracker = trackVideoJs(t.client, player);
    loader.error = { status: 404, code: 2, message: 'HLS playlist request error at URL: x' };
    loader.emit('error');
    loader.emit('loadedplaylist'); // retried and loaded: that error is over
    player.fail({ code: 4, message: 'MEDIA_ERR_SRC_NOT_SUPPORTED' });
    const [error] = await t.ofType('error');
    assert.equal(data(error).error_family, 'media');
    await tracker.destroy();
  });
});
