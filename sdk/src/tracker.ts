/**
 * One player's measurement, independent of the player library: adapters translate the
 * player's own events into these calls, and the tracker turns them into the event
 * contract (docs/events.md) with the view rules the processor applies
 * (processors/view.py): no rebuffering before the first frame, seek waits reported
 * inside the seek, a new view per play attempt.
 */
import type { Client, WireEvent } from './client.js';
import { stripUrl, stripUrlsIn } from './privacy.js';
import type { Runtime } from './runtime.js';

export interface VideoMeta {
  id?: string;
  title?: string;
  series?: string;
  durationMs?: number;
  streamType?: 'vod' | 'live' | string;
  sourceUrl?: string;
}

export interface TrackOptions {
  video?: VideoMeta;
  /** Overrides the client's playerId for this player. */
  playerId?: string;
}

export interface Rendition {
  /** Declared bitrate of the rendition being played, bits per second. */
  bitrate?: number;
  width?: number;
  height?: number;
  framerate?: number;
}

export type ErrorFamily = 'network' | 'media' | 'decode' | 'manifest' | 'drm' | 'other';

export interface PlayerError {
  fatal: boolean;
  family: ErrorFamily;
  code?: string | number;
  message?: string;
  context?: Record<string, unknown>;
}

/** What the tracker reads from the player when it needs it. */
export interface PlayerProbe {
  /** Media position, ms. */
  positionMs(): number | undefined;
  durationMs(): number | undefined;
  /** Buffered media ahead of the position, ms. */
  bufferMs(): number | undefined;
  droppedFrames(): number | undefined;
  /** Decoded video frames so far, for the frozen-frame check. */
  decodedFrames(): number | undefined;
  /** Monotonic time the last video frame was presented, where the browser reports it. */
  lastFrameAt?(): number | undefined;
  /** Stretches between presented frames since the last call (monotonic ms), where reported. */
  frameGaps?(): FrameGap[];
  /** The rendition playing now, for a first frame before any switch event. */
  rendition?(): Rendition | undefined;
  sourceUrl(): string | undefined;
  autoplay?(): boolean | undefined;
  preload?(): string | undefined;
}

/** No new video frame from `start` to `end` (monotonic ms). */
export interface FrameGap {
  start: number;
  end: number;
}

export interface PlayerInfo {
  name: string;
  version?: string;
  /** Cross-check decoded frames: a frame frozen this long while "playing" is a stall. */
  frozenFrameMs?: number;
}

export type EndReason = 'unload' | 'destroy' | 'source_change';

type State = 'idle' | 'starting' | 'playing' | 'paused' | 'closed';

const QUARTILES = [25, 50, 75] as const;
const FRAME_POLL_MS = 250;
/** Position jumps shorter than this are the player's gap jumps, not the viewer's seeks. */
export const MIN_SEEK_MS = 500;
/** Waits shorter than this are not stalls (a freeze under ~250 ms is not seen as one). */
export const MIN_STALL_MS = 250;
/** The frozen-frame check is off in the last seconds of a VOD (see pollFrames). */
const TAIL_MS = 3000;
/** A play() call dates the `play` event (or the fatal error) that follows within this window. */
export const INTENT_WINDOW_MS = 10_000;

export interface Tracker {
  readonly viewId: string;
  destroy(): Promise<void>;
}

export class ViewTracker implements Tracker {
  viewId: string;
  private readonly rt: Runtime;
  private readonly attachedAt: number;
  private readyAt: number | undefined;
  private readySent = false;

  private seq = 0;
  private state: State = 'idle';
  private started = false;
  private playRequestAt = 0;
  /** The app's play() call not confirmed yet (monotonic). */
  private intentAt: number | undefined;
  /** When the last view closed (monotonic): a play requested before then was that view's. */
  private closedAt: number | undefined;
  private playingSince: number | undefined;
  private playingMs = 0;
  private watchSince: number | undefined;
  private stall: { since: number; fromFrames: boolean } | undefined;
  private pendingStall: { since: number; timer: unknown } | undefined;
  private lastStallEnd = 0;
  private seek: { from: number | undefined; since: number; stallEnded: boolean } | undefined;
  private rebufferCount = 0;
  private rebufferMs = 0;
  private current: Rendition = {};
  private quartiles = new Set<number>();
  private heartbeat: unknown;
  private framePoll: unknown;
  private lastFrames: number | undefined;
  private lastFrameAdvance = 0;
  /** Recent seeks (monotonic start, end): frozen stretches during a seek are seek waits. */
  private seekSpans: FrameGap[] = [];
  private readonly removeUnload: () => void;
  private destroyed = false;

  constructor(
    private readonly client: Client,
    private readonly player: PlayerInfo,
    private readonly probe: PlayerProbe,
    private readonly options: TrackOptions = {},
  ) {
    this.rt = client.runtimeClock;
    this.attachedAt = this.rt.monotonic();
    this.viewId = client.newId();
    this.removeUnload = client.onUnload(() => this.end('unload'));
  }

  // --- calls from adapters -------------------------------------------------------------

  /** The player is ready to play (metadata or manifest loaded). */
  ready(): void {
    this.readyAt ??= this.rt.monotonic();
  }

  /**
   * Play intent: play() called, autoplay, or the play button. `atMonotonic` dates it
   * from the call that preceded the confirmation (the app's play(), before `play`).
   */
  playRequested(atMonotonic?: number): void {
    if (this.destroyed) return;
    this.intentAt = undefined;
    if (this.state === 'closed') {
      // Confirmed after the view failed, requested before (Video.js's element play()
      // after a playlist 404): the failed attempt's play, not a new one.
      if (atMonotonic !== undefined && this.closedAt !== undefined && atMonotonic <= this.closedAt) return;
      this.newView();
    }
    if (this.state !== 'idle') return;
    if (this.readyAt !== undefined && !this.readySent) {
      this.readySent = true;
      this.emit('playerready', { player_startup_time: Math.max(0, this.readyAt - this.attachedAt) });
    }
    const now = this.rt.monotonic();
    this.playRequestAt = Math.min(now, atMonotonic ?? now);
    this.watchSince = this.playRequestAt;
    this.state = 'starting';
    this.emit('viewstart', {}, this.rt.now() - (now - this.playRequestAt));
  }

  /**
   * The app called play() (`atMonotonic`; undefined: that play() was refused). The view
   * starts when the player confirms it (playRequested), or at a fatal error that comes
   * first: VHS fails a 404 master before it calls the element's play().
   */
  playIntent(atMonotonic: number | undefined): void {
    if (this.state === 'idle' || atMonotonic === undefined) this.intentAt = atMonotonic;
  }

  /** The tracker's monotonic clock (performance.now() in a page). */
  monotonic(): number {
    return this.rt.monotonic();
  }

  /** True between the play request and the first frame. */
  get isStarting(): boolean {
    return this.state === 'starting' && !this.destroyed;
  }

  /** True once the first frame of the current view was shown. */
  get hasStarted(): boolean {
    return this.started;
  }

  /**
   * Frames are being presented: first frame, resume after pause, or a stall is over.
   * `atMonotonic` backdates a first frame observed late (a frame callback that came late).
   */
  playing(atMonotonic?: number): void {
    if (this.destroyed || this.state === 'closed') return;
    if (this.state === 'idle') this.playRequested();
    const now = this.rt.monotonic();
    if (!this.started) {
      const at = Math.min(now, Math.max(this.playRequestAt, atMonotonic ?? now));
      // Players announce the first rendition before attach, or only on a switch.
      if (this.current.bitrate === undefined && this.current.height === undefined) {
        this.current = { ...(this.probe.rendition?.() ?? {}) };
      }
      this.started = true;
      this.state = 'playing';
      this.playingSince = at;
      this.lastFrameAdvance = at;
      this.lastFrames = this.probe.decodedFrames();
      this.emit(
        'playing',
        { video_startup_time: Math.max(0, at - this.playRequestAt), ...this.renditionData() },
        this.rt.now() - (now - at),
      );
      this.schedule();
      return;
    }
    if (this.stall) {
      if (!this.stall.fromFrames) this.stallEnd();
      return;
    }
    if (this.cancelPendingStall()) return;
    if (this.state === 'paused') {
      this.state = 'playing';
      this.playingSince = now;
      this.watchSince = now;
      this.lastFrameAdvance = now;
      this.emit('playing', this.renditionData());
      this.schedule();
    }
  }

  /** The player waits for data. Before the first frame this is startup time, not a stall. */
  stallStart(sinceMonotonic?: number, fromFrames = false): void {
    if (this.destroyed || !this.started || this.state !== 'playing' || this.stall) return;
    const now = this.rt.monotonic();
    const since = Math.min(now, Math.max(sinceMonotonic ?? now, this.lastStallEnd, this.playingSince ?? now));
    if (!fromFrames && now - since < MIN_STALL_MS) {
      // A wait shorter than this is not a visible freeze; it becomes a stall (from its
      // start) only if it lasts.
      if (this.pendingStall) return;
      const timer = this.rt.setTimeout(() => {
        const pending = this.pendingStall;
        this.pendingStall = undefined;
        if (pending && this.state === 'playing' && !this.stall && !this.destroyed) this.openStall(pending.since, false);
      }, MIN_STALL_MS - (now - since));
      this.pendingStall = { since, timer };
      return;
    }
    this.openStall(since, fromFrames);
  }

  private openStall(since: number, fromFrames: boolean): void {
    const now = this.rt.monotonic();
    this.accountPlaying(since);
    this.stall = { since, fromFrames };
    this.emit(
      'stall_start',
      { buffer_length: this.probe.bufferMs(), bitrate: this.current.bitrate },
      this.rt.now() - (now - since),
    );
    this.schedule();
  }

  /**
   * Data arrived and playback goes on. Inside a seek, the end is reported after the seek.
   * `atMonotonic` backdates an end observed late (the first frame after a frozen picture).
   */
  stallEnd(atMonotonic?: number): void {
    const stall = this.stall;
    if (this.cancelPendingStall()) return;
    if (!stall || this.state === 'closed') return;
    if (this.seek) {
      this.seek.stallEnded = true;
      return;
    }
    const now = this.rt.monotonic();
    const at = Math.min(now, Math.max(stall.since, atMonotonic ?? now));
    const duration = at - stall.since;
    this.stall = undefined;
    this.lastStallEnd = at;
    this.lastFrameAdvance = at;
    this.rebufferCount += 1;
    this.rebufferMs += duration;
    this.playingSince = at;
    this.emit(
      'stall_end',
      { stall_duration: duration, buffer_length: this.probe.bufferMs() },
      this.rt.now() - (now - at),
    );
    this.schedule();
  }

  paused(): void {
    if (this.destroyed || !this.started || this.state !== 'playing') return;
    this.cancelPendingStall();
    const now = this.rt.monotonic();
    if (this.stall) {
      // The processor ends an open stall at the pause; so does the SDK's own count.
      this.rebufferCount += 1;
      this.rebufferMs += Math.max(0, now - this.stall.since);
      this.stall = undefined;
      this.lastStallEnd = now;
    } else {
      this.accountPlaying(now);
    }
    this.playingSince = undefined;
    this.state = 'paused';
    this.emit('pause', { playing_time: this.playingMs });
    this.schedule();
  }

  seekStart(fromMs: number | undefined): void {
    // Before the first frame a "seek" is the player skipping a start gap (hls.js nudges
    // over holes) or a start offset: part of startup, not the viewer's seek.
    if (this.destroyed || !this.started || this.state === 'closed') return;
    // Scrubbing fires several seeking events: the seek runs from the first one.
    if (!this.seek) this.noteSeekSpan({ start: this.rt.monotonic(), end: Infinity });
    this.seek ??= { from: fromMs, since: this.rt.monotonic(), stallEnded: false };
  }

  private noteSeekSpan(span: FrameGap): void {
    this.seekSpans.push(span);
    if (this.seekSpans.length > 4) this.seekSpans.shift();
  }

  seekEnd(toMs: number | undefined): void {
    const seek = this.seek;
    if (!seek || this.state === 'closed') return;
    this.seek = undefined;
    const now = this.rt.monotonic();
    const span = this.seekSpans[this.seekSpans.length - 1];
    if (span && span.end === Infinity) span.end = now;
    this.lastFrameAdvance = now;
    // Players jump small gaps by setting currentTime (hls.js over holes and on stalls,
    // Shaka's gap jumping); a viewer's seek moves further.
    const playerJump = seek.from !== undefined && toMs !== undefined && Math.abs(toMs - seek.from) < MIN_SEEK_MS;
    if (!playerJump) this.emit('seek', { from: seek.from, to: toMs, seek_latency: Math.max(0, now - seek.since) });
    if (seek.stallEnded) this.stallEnd();
  }

  rendition(next: Rendition): void {
    const prev = this.current;
    if (prev.bitrate === next.bitrate && prev.width === next.width && prev.height === next.height) return;
    this.current = { ...next };
    if (!this.started || this.state === 'closed' || this.destroyed) return;
    this.emit('quality_change', {
      previous_bitrate: prev.bitrate,
      new_bitrate: next.bitrate,
      bitrate: next.bitrate,
      previous_resolution: resolution(prev),
      new_resolution: resolution(next),
      resolution: resolution(next),
      framerate: next.framerate,
    });
  }

  /** Position moved: quartiles of a VOD. */
  timeUpdate(): void {
    if (!this.started || this.state === 'closed' || this.destroyed) return;
    const position = this.probe.positionMs();
    const duration = this.options.video?.durationMs ?? this.probe.durationMs();
    if (position === undefined || !duration || !Number.isFinite(duration)) return;
    for (const q of QUARTILES) {
      if (!this.quartiles.has(q) && position >= (duration * q) / 100) this.quartile(q);
    }
  }

  error(error: PlayerError): void {
    if (this.destroyed || this.state === 'closed') return;
    if (this.state === 'idle' && !error.fatal) return;
    const intent = this.intentAt;
    if (this.state === 'idle' && intent !== undefined && this.rt.monotonic() - intent < INTENT_WINDOW_MS) {
      this.playRequested(intent); // the play request this failure ends
    }
    const data: Record<string, unknown> = {
      error_family: error.family,
      error_code: error.code === undefined ? undefined : String(error.code),
      error_message: error.message?.slice(0, 1024),
      fatal: error.fatal,
      error_context: error.context ? (stripUrlsIn(error.context) as Record<string, unknown>) : undefined,
    };
    this.emit('error', data);
    if (error.fatal) this.close();
  }

  ended(): void {
    if (this.destroyed || !this.started || this.state === 'closed') return;
    this.cancelPendingStall();
    const now = this.rt.monotonic();
    if (this.stall) this.stallEnd();
    this.accountPlaying(now);
    if (!this.quartiles.has(100)) this.quartile(100);
    this.emit('ended', {
      playing_time: this.playingMs,
      total_watch_time: this.watchMs(now),
      rebuffer_count: this.rebufferCount,
      rebuffer_duration: this.rebufferMs,
      completion_rate: 1,
    });
    this.close();
  }

  /** A new source was loaded into the same player: the current view is over. */
  sourceChanged(): void {
    if (this.destroyed) return;
    if (this.state !== 'idle') {
      this.end('source_change');
      this.newView();
    }
  }

  async destroy(): Promise<void> {
    if (this.destroyed) return;
    this.end('destroy');
    this.destroyed = true;
    this.removeUnload();
    this.stopTimers();
    await this.client.flush();
  }

  // --- internals -----------------------------------------------------------------------

  /** Sends the explicit end so the view closes now, not after the inactivity timeout. */
  private end(reason: EndReason): void {
    if (this.state === 'idle' || this.state === 'closed' || this.destroyed) return;
    const now = this.rt.monotonic();
    this.accountPlaying(now);
    this.emit('view_end', { reason, playing_time: this.playingMs, total_watch_time: this.watchMs(now) });
    this.close();
  }

  private quartile(q: number): void {
    this.quartiles.add(q);
    const now = this.rt.monotonic();
    this.emit('quartile', { quartile: q, playing_time: this.playingTimeAt(now), watch_time: this.watchMs(now) });
  }

  private cancelPendingStall(): boolean {
    const pending = this.pendingStall;
    if (!pending) return false;
    this.rt.clearTimeout(pending.timer);
    this.pendingStall = undefined;
    return true;
  }

  private close(): void {
    this.cancelPendingStall();
    this.state = 'closed';
    this.closedAt = this.rt.monotonic();
    this.intentAt = undefined;
    this.stall = undefined;
    this.seek = undefined;
    this.playingSince = undefined;
    this.stopTimers();
  }

  private newView(): void {
    this.viewId = this.client.newId();
    this.seq = 0;
    this.state = 'idle';
    this.started = false;
    this.playingSince = undefined;
    this.playingMs = 0;
    this.watchSince = undefined;
    this.stall = undefined;
    this.seek = undefined;
    this.rebufferCount = 0;
    this.rebufferMs = 0;
    this.quartiles = new Set();
    this.lastStallEnd = 0;
  }

  private accountPlaying(until: number): void {
    if (this.playingSince !== undefined && !this.stall) {
      this.playingMs += Math.max(0, until - this.playingSince);
      this.playingSince = until;
    }
  }

  private playingTimeAt(now: number): number {
    const open = this.playingSince !== undefined && !this.stall ? Math.max(0, now - this.playingSince) : 0;
    return this.playingMs + open;
  }

  private watchMs(now: number): number {
    return this.watchSince === undefined ? 0 : Math.max(0, now - this.playRequestAt);
  }

  private renditionData(): Record<string, unknown> {
    return {
      bitrate: this.current.bitrate,
      resolution: resolution(this.current),
      framerate: this.current.framerate,
    };
  }

  /** Heartbeats: every heartbeatIntervalMs while playing or stalled, slower while paused. */
  private schedule(): void {
    this.stopTimers();
    if (!this.started || this.state === 'closed' || this.destroyed) return;
    const cfg = this.client.config;
    const interval = this.state === 'paused' ? cfg.pausedHeartbeatIntervalMs : cfg.heartbeatIntervalMs;
    this.heartbeat = this.rt.setTimeout(() => {
      this.heartbeat = undefined;
      this.sendHeartbeat();
      this.schedule();
    }, interval);
    if (this.player.frozenFrameMs !== undefined && this.state === 'playing') this.pollFrames();
  }

  private sendHeartbeat(): void {
    const now = this.rt.monotonic();
    this.emit('heartbeat', {
      playing_time: this.playingTimeAt(now),
      bitrate: this.current.bitrate,
      buffer_length: this.probe.bufferMs(),
      dropped_frames: this.probe.droppedFrames(),
      player_state: this.state === 'paused' ? 'paused' : this.stall ? 'buffering' : 'playing',
    });
  }

  /** A frozen video frame while the clock runs is a stall even if the element says "playing". */
  private pollFrames(): void {
    this.framePoll = this.rt.setTimeout(() => {
      this.framePoll = undefined;
      if (this.state !== 'playing' || this.destroyed) return;
      const now = this.rt.monotonic();
      if (this.inTail() && !this.stall) {
        // A video track a little shorter than the audio holds its last frame until
        // `ended`: that is the end of the video, not a stall.
        this.pollFrames();
        return;
      }
      const presented = this.probe.lastFrameAt?.();
      const frames = presented === undefined ? this.probe.decodedFrames() : undefined;
      const gaps = this.probe.frameGaps?.() ?? [];
      this.frozenStretchesBetweenPolls(gaps);
      if (presented !== undefined) {
        // Presented-frame times (requestVideoFrameCallback): the picture the viewer sees.
        const last = Math.max(presented, this.lastFrameAdvance);
        const stall = this.stall;
        if (stall?.fromFrames) {
          if (presented > stall.since) {
            // The first frame after the freeze, not the latest one (up to a poll later).
            const resumed = gaps.find((g) => g.end > stall.since)?.end ?? presented;
            stall.fromFrames = false;
            this.stallEnd(resumed);
          }
        } else if (!this.stall && !this.seek && now - last >= (this.player.frozenFrameMs ?? Infinity)) {
          this.stallStart(last, true);
        }
      } else if (frames !== undefined) {
        if (this.lastFrames === undefined || frames > this.lastFrames) {
          this.lastFrames = frames;
          this.lastFrameAdvance = now;
          if (this.stall?.fromFrames) {
            this.stall.fromFrames = false;
            this.stallEnd();
          }
        } else if (
          !this.stall &&
          !this.seek &&
          now - this.lastFrameAdvance >= (this.player.frozenFrameMs ?? Infinity)
        ) {
          this.stallStart(this.lastFrameAdvance, true);
        }
      }
      if (this.framePoll === undefined && this.state === 'playing') this.pollFrames();
    }, FRAME_POLL_MS);
  }

  /**
   * A frozen stretch that began and ended between two polls (or before the poll saw it
   * last long enough) is a stall all the same: the picture froze. Reported afterwards,
   * dated from its last frame to its next one, unless a stall or a seek covered it.
   */
  private frozenStretchesBetweenPolls(gaps: FrameGap[]): void {
    const limit = this.player.frozenFrameMs;
    if (limit === undefined || this.stall || this.seek || this.pendingStall) return;
    for (const gap of gaps) {
      // Not before the first frame, a resume or the end of a stall or seek.
      const start = Math.max(gap.start, this.lastFrameAdvance);
      const seeking = this.seekSpans.some((s) => s.start <= gap.end && s.end >= gap.start);
      if (gap.end - start < limit || seeking) continue;
      this.openStall(start, false);
      this.stallEnd(gap.end);
    }
  }

  private inTail(): boolean {
    const position = this.probe.positionMs();
    const duration = this.options.video?.durationMs ?? this.probe.durationMs();
    return (
      position !== undefined && duration !== undefined && Number.isFinite(duration) && duration - position < TAIL_MS
    );
  }

  private stopTimers(): void {
    if (this.heartbeat !== undefined) this.rt.clearTimeout(this.heartbeat);
    if (this.framePoll !== undefined) this.rt.clearTimeout(this.framePoll);
    this.heartbeat = undefined;
    this.framePoll = undefined;
  }

  private emit(type: string, data: Record<string, unknown>, eventTime = this.rt.now()): void {
    const meta = this.options.video ?? {};
    const cfg = this.client.config;
    const duration = meta.durationMs ?? this.probe.durationMs();
    const position = this.probe.positionMs();
    const event: WireEvent = {
      ...this.client.envelope(),
      event_id: this.client.newId(),
      event_type: type,
      event_time: Math.round(eventTime),
      sequence: ++this.seq,
      view_id: this.viewId,
      player_id: this.options.playerId ?? cfg.playerId ?? this.player.name,
      playback_time: position !== undefined && Number.isFinite(position) && position >= 0 ? position : undefined,
      player: {
        name: this.player.name,
        version: this.player.version,
        autoplay: this.probe.autoplay?.(),
        preload: this.probe.preload?.(),
      },
      video: {
        id: meta.id,
        title: cfg.sendTitles ? meta.title : undefined,
        series: cfg.sendTitles ? meta.series : undefined,
        duration: duration !== undefined && Number.isFinite(duration) ? duration : undefined,
        source_url: stripUrl(meta.sourceUrl ?? this.probe.sourceUrl()),
        stream_type: meta.streamType ?? (duration === Infinity ? 'live' : undefined),
      },
      data,
    };
    this.client.enqueue(event);
  }
}

function resolution(r: Rendition): { width: number; height: number } | undefined {
  return r.width && r.height ? { width: Math.round(r.width), height: Math.round(r.height) } : undefined;
}
