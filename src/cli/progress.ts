/**
 * Progress while the CLI waits, on stderr (stdout keeps only the result). On a terminal: one line
 * per phase, the current one redrawn with a spinner and the elapsed time, each finished one ticked.
 * Anywhere else (a pipe, a file, CI): a short plain line per phase or change, without ANSI codes.
 * `--quiet` turns it off.
 *
 *   ✓ VM demo: queued for the scheduler            0.1s
 *   ✓ VM demo: placed on worker-01                 0.3s
 *   ⠙ VM demo: booting on worker-01                1.2s
 */

const FRAMES = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];

/** `0.4s`, `12s`, `2m05s`. */
export function formatElapsed(ms: number): string {
  if (ms < 10_000) return `${(Math.max(0, ms) / 1000).toFixed(1)}s`;
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${s}s`;
  return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
}

/** `[#####-----]`: `done` of `total`, `width` marks wide. */
export function renderBar(done: number, total: number, width = 10): string {
  const fraction = total <= 0 ? 1 : Math.min(1, Math.max(0, done / total));
  const filled = Math.round(fraction * width);
  return `[${'#'.repeat(filled)}${'-'.repeat(width - filled)}]`;
}

const active = new Set<Progress>();

/** Ends every progress display (before an error message, so the message starts on its own line). */
export function stopAllProgress(): void {
  for (const progress of active) progress.stop();
}

export interface ProgressOptions {
  /** False: print nothing (`--quiet`). */
  enabled?: boolean;
  /** Whether stderr is a terminal (default: ask it). */
  tty?: boolean;
  stream?: NodeJS.WriteStream;
  /** Counted from (default: now). */
  startedAt?: number;
}

export class Progress {
  private readonly stream: NodeJS.WriteStream;
  private readonly tty: boolean;
  private readonly enabled: boolean;
  private readonly color: boolean;
  private readonly started: number;
  private current: string | null = null;
  private lastPlain: string | null = null;
  private frame = 0;
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly prefix: string,
    options: ProgressOptions = {},
  ) {
    this.stream = options.stream ?? process.stderr;
    this.enabled = options.enabled ?? true;
    this.tty = options.tty ?? this.stream.isTTY === true;
    this.color = this.tty && !process.env.NO_COLOR;
    this.started = options.startedAt ?? Date.now();
  }

  get elapsedMs(): number {
    return Date.now() - this.started;
  }

  /** A new phase: the current one (if any) is done. */
  phase(text: string): void {
    if (!this.enabled) return;
    if (this.current !== null && this.current !== text) this.finish('✓', this.current);
    this.show(text);
  }

  /** Changes what the current phase says (a count that went down, a reason that changed). */
  update(text: string): void {
    if (!this.enabled) return;
    this.show(text);
  }

  /** Done: the current phase ticked, then `text` (when given) as the last line. */
  succeed(text?: string): void {
    if (!this.enabled) return;
    if (this.current !== null && this.current !== text) this.finish('✓', this.current);
    if (text !== undefined) this.finish('✓', text);
    this.stop();
  }

  /** Failed: the current phase crossed out. */
  fail(): void {
    if (!this.enabled) return;
    if (this.current !== null) this.finish('✗', this.current);
    this.stop();
  }

  /** Leaves the display as it is (its current line finished), with no timer left running. */
  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    if (this.tty && this.current !== null) this.stream.write('\n');
    this.current = null;
    active.delete(this);
  }

  private show(text: string): void {
    this.current = text;
    active.add(this);
    if (!this.tty) {
      if (text === this.lastPlain) return;
      this.lastPlain = text;
      this.stream.write(`${this.prefix}${text} (${formatElapsed(this.elapsedMs)})\n`);
      return;
    }
    this.render();
    if (!this.timer) {
      this.timer = setInterval(() => this.render(), 100);
      this.timer.unref();
    }
  }

  private render(): void {
    if (this.current === null) return;
    this.frame = (this.frame + 1) % FRAMES.length;
    const spinner = this.paint('36', FRAMES[this.frame]!);
    this.stream.write(
      `\r\x1b[2K${spinner} ${this.prefix}${this.current}  ${this.paint('2', formatElapsed(this.elapsedMs))}`,
    );
  }

  private finish(mark: '✓' | '✗', text: string): void {
    if (!this.tty) {
      if (text !== this.lastPlain || mark === '✗') {
        this.lastPlain = text;
        this.stream.write(
          `${this.prefix}${mark === '✗' ? 'failed: ' : ''}${text} (${formatElapsed(this.elapsedMs)})\n`,
        );
      }
      this.current = null;
      return;
    }
    const painted = this.paint(mark === '✓' ? '32' : '31', mark);
    this.stream.write(`\r\x1b[2K${painted} ${this.prefix}${text}  ${this.paint('2', formatElapsed(this.elapsedMs))}\n`);
    this.current = null;
  }

  private paint(code: string, text: string): string {
    return this.color ? `\x1b[${code}m${text}\x1b[0m` : text;
  }
}
