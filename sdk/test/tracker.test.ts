import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Client, type WireEvent } from '../src/client.js';
import { ViewTracker } from '../src/tracker.js';
import { FakeProbe, fakePage, settle } from './fakes.js';

function setup(options: { frozenFrameMs?: number; sendTitles?: boolean } = {}) {
  const page = fakePage();
  const client = new Client(
    {
      collectorUrl: 'http://127.0.0.1:8080',
      ingestKey: 'k',
      orgId: 'demo',
      flushIntervalMs: 1000,
      sendTitles: options.sendTitles ?? false,
    },
    page.runtime,
  );
  const probe = new FakeProbe();
  const tracker = new ViewTracker(
    client,
    { name: 'test-player', version: '1.0', frozenFrameMs: options.frozenFrameMs },
    probe,
    { video: { id: 'vid-1', title: 'Secret title', durationMs: 60_000, streamType: 'vod' } },
  );
  const sent = async (): Promise<WireEvent[]> => {
    await client.flush();
    return page.fetch.requests.flatMap((r) => r.events as WireEvent[]);
  };
  const types = async (): Promise<string[]> => (await sent()).map((e) => e.event_type);
  const data = (e: WireEvent | undefined): Record<string, unknown> => (e?.data ?? {}) as Record<string, unknown>;
  return { page, client, probe, tracker, sent, types, data, clock: page.clock };
}

describe('view tracker', () => {
  it('measures startup from play request to first frame and ignores waits before it', async () => {
    const t = setup();
    t.tracker.playRequested();
    await t.clock.advance(300);
    t.tracker.stallStart(); // startup wait: not a stall
    await t.clock.advance(900);
    t.tracker.playing();
    const events = await t.sent();
    assert.deepEqual(events.map((e) => e.event_type), ['viewstart', 'playing']);
    assert.equal(t.data(events[1]).video_startup_time, 1200);
    assert.equal(events[1]!.event_time as number - (events[0]!.event_time as number), 1200);
  });

  it('numbers events per view, gives each a unique id, and starts a new view after the end', async () => {
    const t = setup();
    const first = t.tracker.viewId;
    t.tracker.playRequested();
    t.tracker.playing();
    t.tracker.ended();
    t.tracker.playRequested(); // replay
    t.tracker.playing();
    const events = await t.sent();
    const second = t.tracker.viewId;
    assert.notEqual(second, first);
    const seq = (view: string) => events.filter((e) => e.view_id === view).map((e) => e.sequence);
    assert.deepEqual(seq(first), [1, 2, 3, 4]); // viewstart, playing, quartile 100, ended
    assert.deepEqual(seq(second), [1, 2]);
    assert.equal(new Set(events.map((e) => e.event_id)).size, events.length);
    assert.ok(events.every((e) => e.session_id === events[0]!.session_id));
  });

  it('reports a stall with its duration, and its end before anything else', async () => {
    const t = setup();
    t.tracker.playRequested();
    t.tracker.playing();
    await t.clock.advance(5000);
    t.tracker.stallStart();
    t.tracker.stallStart(); // repeated waiting: one stall
    await t.clock.advance(1500);
    t.tracker.playing();
    const events = await t.sent();
    assert.deepEqual(events.map((e) => e.event_type), ['viewstart', 'playing', 'stall_start', 'stall_end']);
    assert.equal(t.data(events[3]).stall_duration, 1500);
    assert.equal(events[3]!.event_time as number - (events[2]!.event_time as number), 1500);
  });

  it('does not report waits shorter than 250 ms, and dates a longer one from its start', async () => {
    const t = setup();
    t.tracker.playRequested();
    t.tracker.playing();
    await t.clock.advance(1000);
    t.tracker.stallStart();
    await t.clock.advance(200);
    t.tracker.playing(); // a 200 ms wait: not a stall
    await t.clock.advance(1000);
    t.tracker.stallStart();
    await t.clock.advance(600);
    t.tracker.stallEnd();
    const events = await t.sent();
    assert.deepEqual(events.map((e) => e.event_type), ['viewstart', 'playing', 'stall_start', 'stall_end']);
    const start = events[0]!.event_time as number;
    assert.equal((events[2]!.event_time as number) - start, 2200);
    assert.equal(t.data(events[3]).stall_duration, 600);
  });

  it('reports a stall inside a seek after the seek, so the processor books it as a seek wait', async () => {
    const t = setup();
    t.tracker.playRequested();
    t.tracker.playing();
    await t.clock.advance(2000);
    t.tracker.seekStart(2000);
    t.tracker.stallStart();
    await t.clock.advance(700);
    t.tracker.stallEnd(); // the player resumes before it reports the seek done
    await t.clock.advance(50);
    t.tracker.seekEnd(30_000);
    const events = await t.sent();
    assert.deepEqual(events.map((e) => e.event_type), ['viewstart', 'playing', 'stall_start', 'seek', 'stall_end']);
    assert.deepEqual(
      { from: t.data(events[3]).from, to: t.data(events[3]).to, latency: t.data(events[3]).seek_latency },
      { from: 2000, to: 30_000, latency: 750 },
    );
  });

  it('sends the playing rendition on first frame and quality_change on switches only', async () => {
    const t = setup();
    t.tracker.rendition({ bitrate: 800_000, width: 640, height: 360 });
    t.tracker.rendition({ bitrate: 1_500_000, width: 960, height: 540 }); // before the first frame
    t.tracker.playRequested();
    t.tracker.playing();
    t.tracker.rendition({ bitrate: 1_500_000, width: 960, height: 540 }); // same again
    t.tracker.rendition({ bitrate: 3_000_000, width: 1280, height: 720, framerate: 30 });
    const events = await t.sent();
    assert.deepEqual(events.map((e) => e.event_type), ['viewstart', 'playing', 'quality_change']);
    assert.equal(t.data(events[1]).bitrate, 1_500_000);
    assert.deepEqual(t.data(events[1]).resolution, { width: 960, height: 540 });
    assert.deepEqual(
      [t.data(events[2]).previous_bitrate, t.data(events[2]).new_bitrate, t.data(events[2]).new_resolution],
      [1_500_000, 3_000_000, { width: 1280, height: 720 }],
    );
  });

  it('asks the player for the playing rendition at the first frame when no switch was seen', async () => {
    const t = setup();
    (t.probe as unknown as { rendition: () => object }).rendition = () => ({ bitrate: 1_200_000, width: 960, height: 540 });
    t.tracker.playRequested();
    t.tracker.playing();
    const [, first] = await t.sent();
    assert.equal(t.data(first).bitrate, 1_200_000);
    assert.deepEqual(t.data(first).resolution, { width: 960, height: 540 });
  });

  it('sends quartiles once each, and 100 with ended', async () => {
    const t = setup();
    t.tracker.playRequested();
    t.tracker.playing();
    for (const position of [10_000, 15_000, 16_000, 31_000, 44_000, 46_000, 59_000]) {
      t.probe.position = position;
      t.tracker.timeUpdate();
    }
    t.tracker.ended();
    const events = await t.sent();
    const quartiles = events.filter((e) => e.event_type === 'quartile').map((e) => t.data(e).quartile);
    assert.deepEqual(quartiles, [25, 50, 75, 100]);
    assert.equal(events.at(-1)?.event_type, 'ended');
  });

  it('sends heartbeats every 10 s while playing and every 30 s while paused, with the state', async () => {
    const t = setup();
    t.tracker.playRequested();
    t.tracker.playing();
    await t.clock.advance(25_000);
    t.tracker.paused();
    await t.clock.advance(65_000);
    t.tracker.playing();
    await t.clock.advance(10_000);
    const events = await t.sent();
    const beats = events.filter((e) => e.event_type === 'heartbeat');
    const start = events[0]!.event_time as number;
    assert.deepEqual(
      beats.map((e) => [(e.event_time as number) - start, t.data(e).player_state]),
      [
        [10_000, 'playing'],
        [20_000, 'playing'],
        [55_000, 'paused'],
        [85_000, 'paused'],
        [100_000, 'playing'],
      ],
    );
    assert.equal(t.data(beats[2]).playing_time, 25_000, 'playing time stops while paused');
    assert.equal(t.data(beats[4]).playing_time, 35_000);
  });

  it('ends the view on a fatal error and starts a new one on the next play', async () => {
    const t = setup();
    t.tracker.playRequested();
    t.tracker.error({ fatal: false, family: 'network', code: 'fragLoadError', message: 'retrying' });
    t.tracker.error({
      fatal: true,
      family: 'network',
      code: 404,
      context: { url: 'https://cdn.example.com/seg1.ts?sig=abc' },
    });
    t.tracker.error({ fatal: true, family: 'media', code: 4 }); // the element's echo: same failure
    const failed = t.tracker.viewId;
    t.tracker.playRequested();
    const events = await t.sent();
    assert.deepEqual(events.map((e) => `${e.event_type}:${e.view_id === failed}`), [
      'viewstart:true',
      'error:true',
      'error:true',
      'viewstart:false',
    ]);
    assert.equal(t.data(events[2]).fatal, true);
    assert.equal(t.data(events[2]).error_code, '404');
    assert.equal(t.data(events[2]).error_context && (t.data(events[2]).error_context as { url: string }).url,
      'https://cdn.example.com/seg1.ts');
  });

  it('sends view_end on destroy, on page unload and on a new source, not before any play', async () => {
    const t = setup();
    await t.tracker.destroy();
    assert.equal(t.page.fetch.requests.length, 0, 'an unplayed view sends nothing');

    const u = setup();
    u.tracker.playRequested();
    u.tracker.playing();
    u.page.hide(true);
    const beacon = JSON.parse(u.page.beacons[0]!.body) as { events: WireEvent[] };
    assert.deepEqual(beacon.events.map((e) => e.event_type), ['viewstart', 'playing', 'view_end']);
    assert.equal(u.data(beacon.events[2]).reason, 'unload');

    const s = setup();
    s.tracker.playRequested();
    const old = s.tracker.viewId;
    s.tracker.sourceChanged();
    s.tracker.playRequested();
    await s.tracker.destroy();
    const events = await s.sent();
    assert.deepEqual(events.map((e) => [e.event_type, e.view_id === old, u.data(e).reason]), [
      ['viewstart', true, undefined],
      ['view_end', true, 'source_change'],
      ['viewstart', false, undefined],
      ['view_end', false, 'destroy'],
    ]);
  });

  it('counts a frozen frame as a stall even while the element says playing', async () => {
    const t = setup({ frozenFrameMs: 500 });
    t.tracker.playRequested();
    t.tracker.playing();
    for (let i = 0; i < 8; i++) {
      t.probe.frames = (t.probe.frames ?? 0) + 10;
      await t.clock.advance(250);
    }
    // Video frozen for 2 s; the element fires "playing" in between, which must not end it.
    await t.clock.advance(1000);
    t.tracker.playing();
    await t.clock.advance(1000);
    t.probe.frames = (t.probe.frames ?? 0) + 10;
    await t.clock.advance(250);
    const events = await t.sent();
    assert.deepEqual(events.map((e) => e.event_type), ['viewstart', 'playing', 'stall_start', 'stall_end']);
    const duration = t.data(events[3]).stall_duration as number;
    assert.ok(duration >= 2000 && duration <= 2250, `stall of ${duration} ms`);
    assert.ok((events[3]!.event_time as number) - (events[2]!.event_time as number) === duration);
  });

  it('takes a position jump under 500 ms for the player jumping a gap, not a seek', async () => {
    const t = setup();
    t.tracker.playRequested();
    t.tracker.playing();
    await t.clock.advance(1000);
    t.tracker.seekStart(1000);
    t.tracker.seekEnd(1180);
    t.tracker.seekStart(2000);
    t.tracker.seekEnd(9000);
    const seeks = (await t.sent()).filter((e) => e.event_type === 'seek');
    assert.deepEqual(seeks.map((e) => t.data(e).to), [9000]);
  });

  it('ignores seeks before the first frame (start-gap nudges are startup, not the viewer)', async () => {
    const t = setup();
    t.tracker.playRequested();
    t.tracker.seekStart(0);
    await t.clock.advance(50);
    t.tracker.seekEnd(100);
    await t.clock.advance(250);
    t.tracker.playing();
    assert.deepEqual(await t.types(), ['viewstart', 'playing']);
  });

  it('dates the play request from the app\'s play() call when the element confirms it late', async () => {
    const t = setup();
    const called = t.tracker.monotonic();
    await t.clock.advance(90); // the element's `play` task runs late
    t.tracker.playRequested(called);
    await t.clock.advance(400);
    t.tracker.playing();
    const [start, first] = await t.sent();
    assert.equal(t.data(first).video_startup_time, 490);
    assert.equal((first!.event_time as number) - (start!.event_time as number), 490);
  });

  it('backdates a first frame seen late to the presented frame time', async () => {
    const t = setup();
    t.tracker.playRequested();
    await t.clock.advance(500);
    const presented = t.tracker.monotonic() - 120;
    t.tracker.playing(presented);
    const [start, first] = await t.sent();
    assert.equal(t.data(first).video_startup_time, 380);
    assert.equal((first!.event_time as number) - (start!.event_time as number), 380);
  });

  it('times a frozen picture by presented frames when the browser reports them', async () => {
    const t = setup({ frozenFrameMs: 500 });
    let lastFrame: number | undefined;
    (t.probe as unknown as { lastFrameAt: () => number | undefined }).lastFrameAt = () => lastFrame;
    t.tracker.playRequested();
    t.tracker.playing();
    for (let i = 0; i < 8; i++) {
      await t.clock.advance(250);
      lastFrame = t.tracker.monotonic() - 10;
    }
    const frozenAt = lastFrame!;
    await t.clock.advance(1900); // no frame for 1.9 s
    lastFrame = frozenAt + 1830; // the next frame, seen by the next poll
    await t.clock.advance(250);
    const events = await t.sent();
    assert.deepEqual(events.map((e) => e.event_type), ['viewstart', 'playing', 'stall_start', 'stall_end']);
    assert.equal(t.data(events[3]).stall_duration, 1830);
    assert.equal((events[3]!.event_time as number) - (events[2]!.event_time as number), 1830);
  });

  it('ends a frozen-picture stall at the first frame after it, not the latest one the poll sees', async () => {
    const t = setup({ frozenFrameMs: 500 });
    let lastFrame: number | undefined;
    let gaps: { start: number; end: number }[] = [];
    const probe = t.probe as unknown as { lastFrameAt: () => number | undefined; frameGaps: () => typeof gaps };
    probe.lastFrameAt = () => lastFrame;
    probe.frameGaps = () => gaps.splice(0);
    t.tracker.playRequested();
    t.tracker.playing();
    for (let i = 0; i < 8; i++) {
      await t.clock.advance(250);
      lastFrame = t.tracker.monotonic() - 10;
    }
    const frozenAt = lastFrame!;
    await t.clock.advance(1900);
    gaps = [{ start: frozenAt, end: frozenAt + 1830 }];
    lastFrame = frozenAt + 2030; // frames again since 200 ms
    await t.clock.advance(250);
    const events = await t.sent();
    assert.deepEqual(events.map((e) => e.event_type), ['viewstart', 'playing', 'stall_start', 'stall_end']);
    assert.equal(t.data(events[3]).stall_duration, 1830);
  });

  it('reports a frozen stretch that began and ended between two polls, but not one inside a seek', async () => {
    const t = setup({ frozenFrameMs: 500 });
    let gaps: { start: number; end: number }[] = [];
    const probe = t.probe as unknown as { lastFrameAt: () => number; frameGaps: () => typeof gaps };
    probe.lastFrameAt = () => t.tracker.monotonic() - 20;
    probe.frameGaps = () => gaps.splice(0);
    t.tracker.playRequested();
    t.tracker.playing();
    await t.clock.advance(2000);
    const now = t.tracker.monotonic();
    // Frozen 530 ms, 200 ms and 700 ms (the element never said it waited).
    gaps = [
      { start: now - 1500, end: now - 970 },
      { start: now - 900, end: now - 700 },
    ];
    await t.clock.advance(250);
    t.tracker.seekStart(4000);
    await t.clock.advance(100);
    t.tracker.seekEnd(20_000);
    gaps = [{ start: t.tracker.monotonic() - 400, end: t.tracker.monotonic() + 300 }];
    await t.clock.advance(500);
    const events = await t.sent();
    assert.deepEqual(events.map((e) => e.event_type), ['viewstart', 'playing', 'stall_start', 'stall_end', 'seek']);
    assert.equal(t.data(events[3]).stall_duration, 530);
    const start = events[0]!.event_time as number;
    assert.equal((events[2]!.event_time as number) - start, 500);
  });

  it('does not take the held last frame at the end of a VOD for a stall', async () => {
    const t = setup({ frozenFrameMs: 500 });
    t.tracker.playRequested();
    t.tracker.playing();
    t.probe.position = 58_000; // 2 s before the end; the video track has ended
    await t.clock.advance(2000);
    t.probe.position = 60_000;
    t.tracker.ended();
    assert.deepEqual(await t.types(), ['viewstart', 'playing', 'quartile', 'ended']);
  });

  it('strips query strings from URLs and sends titles only when allowed', async () => {
    const t = setup();
    t.tracker.playRequested();
    const [event] = await t.sent();
    const video = event!.video as Record<string, unknown>;
    assert.equal(video.source_url, 'https://cdn.example.com/v/master.m3u8');
    assert.equal(video.title, undefined);
    assert.ok(!JSON.stringify(event).includes('secret'));

    const titled = setup({ sendTitles: true });
    titled.tracker.playRequested();
    const [e2] = await titled.sent();
    assert.equal((e2!.video as Record<string, unknown>).title, 'Secret title');
  });
});

void settle;
