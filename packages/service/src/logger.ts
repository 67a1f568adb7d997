import { pino, type Logger } from 'pino';

export type { Logger };

export interface LoggerOptions {
  /** pino level: trace, debug, info, warn, error, fatal, silent. */
  level?: string;
  /** Human-readable lines instead of JSON (what `tessera dev` uses). */
  pretty?: boolean;
  /** Where the JSON lines go instead of stdout (a test that reads them); not with `pretty`. */
  destination?: { write(line: string): void };
}

/** Structured JSON logs on stdout, one logger per service with its name and id bound. */
export function createLogger(service: string, bindings: Record<string, unknown>, options: LoggerOptions = {}): Logger {
  const level = options.level ?? process.env.TESSERA_LOG_LEVEL ?? 'info';
  const pretty = options.pretty ?? process.env.TESSERA_LOG_PRETTY === '1';
  const pinoOptions = {
    level,
    base: { service, ...bindings },
    transport: pretty
      ? { target: 'pino-pretty', options: { colorize: false, translateTime: 'HH:MM:ss.l', ignore: 'pid,hostname,service', singleLine: true } }
      : undefined,
  };
  return options.destination === undefined || pretty ? pino(pinoOptions) : pino(pinoOptions, options.destination);
}
