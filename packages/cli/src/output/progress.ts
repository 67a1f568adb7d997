/**
 * A progress line on stderr, at most once a second. On a terminal it rewrites one
 * line in place; otherwise (a log file, or CI set, as CI runners set it even on a pseudo
 * terminal) it prints a new line each second with no control codes, so only runs longer
 * than a second print anything.
 */
export interface ProgressOptions {
  stream?: NodeJS.WriteStream;
  intervalMs?: number;
  /** Builds the text of the line; called once per interval. */
  render: () => string;
}

export class Progress {
  private readonly stream: NodeJS.WriteStream;
  private readonly render: () => string;
  private readonly timer: NodeJS.Timeout;
  private drawn = false;
  private readonly inPlace: boolean;

  constructor(options: ProgressOptions) {
    this.stream = options.stream ?? process.stderr;
    this.inPlace = this.stream.isTTY === true && !isCi();
    this.render = options.render;
    this.timer = setInterval(() => this.draw(), options.intervalMs ?? 1_000);
    // The progress line must never keep the process alive by itself.
    this.timer.unref();
  }

  private draw(): void {
    const text = this.render();
    if (this.inPlace) {
      this.stream.write(`\r\x1b[K${text}`);
      this.drawn = true;
    } else {
      this.stream.write(`${text}\n`);
    }
  }

  /** Stops the ticker and clears the in-place line, so the summary prints on a clean line. */
  stop(): void {
    clearInterval(this.timer);
    if (this.drawn && this.inPlace) this.stream.write('\r\x1b[K');
    this.drawn = false;
  }
}

/** `CI` set to anything but `false`/`0`, as CI services do. */
export function isCi(env: NodeJS.ProcessEnv = process.env): boolean {
  const ci = env.CI;
  return ci !== undefined && ci !== '' && ci !== 'false' && ci !== '0';
}
