/**
 * How the CLI turns a failure into the one line a user reads on stderr. A user error
 * (bad flag, unknown topic, unreachable coordinator) never shows a stack trace;
 * TESSERA_DEBUG=1 shows the stack of anything.
 */
import { discoverTls } from '@tessera/client';
import { JsonHttpClient, TesseraError, type TlsClientOptions } from '@tessera/protocol';

/** A failure the user can act on; its message is printed as is, after `tessera: `. */
export class CliError extends Error {
  readonly exitCode: number;

  constructor(message: string, options: { exitCode?: number; cause?: unknown } = {}) {
    super(message, { cause: options.cause });
    this.name = 'CliError';
    this.exitCode = options.exitCode ?? 1;
  }
}

/** What a command was working on, so an error can name it (`topic "x" not found`). */
export interface ErrorContext {
  coordinatorUrl: string;
  topic?: string;
  group?: string;
}

const NETWORK_REASONS: Record<string, string> = {
  ECONNREFUSED: 'connection refused',
  ECONNRESET: 'connection reset',
  EPIPE: 'connection closed',
  ETIMEDOUT: 'timed out',
  ERR_SOCKET_CONNECTION_TIMEOUT: 'timed out',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
  ENOTFOUND: 'host not found',
  EAI_AGAIN: 'host name lookup failed',
  UND_ERR_SOCKET: 'connection closed',
};

/**
 * When a call found no such route, or was refused for want of credentials (a broker does not
 * know the dev cluster's admin by its URL), asks `/health` of the URL given as the coordinator
 * which service answers there: pointed at a broker, the CLI says so instead of "no route GET
 * /topics". Undefined for any other failure, or when the URL does not say it is a broker.
 */
export async function wrongServiceHint(
  error: unknown,
  context: ErrorContext,
  options: { tls?: TlsClientOptions; timeoutMs?: number } = {},
): Promise<string | undefined> {
  if (!(error instanceof TesseraError) || (error.code !== 'NOT_FOUND' && error.code !== 'UNAUTHORIZED')) return undefined;
  let http: JsonHttpClient | undefined;
  try {
    const tls = options.tls ?? discoverTls(context.coordinatorUrl);
    http = new JsonHttpClient({ timeoutMs: options.timeoutMs ?? 2_000, maxSockets: 1, ...(tls === undefined ? {} : { tls }) });
    const health = await http.get<{ service?: unknown; id?: unknown }>(new URL('/health', context.coordinatorUrl).toString());
    if (health.service !== 'broker') return undefined;
    const broker = typeof health.id === 'number' ? `broker ${health.id}` : 'a broker';
    return `${context.coordinatorUrl} is ${broker}, not the coordinator: give --coordinator (or TESSERA_COORDINATOR) the coordinator's URL`;
  } catch {
    return undefined;
  } finally {
    http?.close();
  }
}

/** One line, without the `tessera: ` prefix, describing `error` for a user. */
export function describeError(error: unknown, context: ErrorContext): string {
  if (error instanceof CliError) return error.message;
  // A call that got no answer, even when the client wrapped it (UNAVAILABLE with the network error as cause).
  const network = networkFailure(error);
  if (network !== undefined) {
    const url = urlIn(network.error) ?? urlIn(error);
    if (url === undefined || sameOrigin(url, context.coordinatorUrl)) {
      return `cannot reach the coordinator at ${context.coordinatorUrl} (${network.reason})`;
    }
    return `cannot reach the broker at ${url} (${network.reason})`;
  }
  if (error instanceof TesseraError) return describeTesseraError(error, context);
  if (error instanceof Error) return firstLine(error.message) || error.name;
  return firstLine(String(error));
}

function describeTesseraError(error: TesseraError, context: ErrorContext): string {
  switch (error.code) {
    case 'TOPIC_NOT_FOUND':
      return context.topic !== undefined ? `topic "${context.topic}" not found` : firstLine(error.message);
    case 'GROUP_NOT_FOUND':
      return context.group !== undefined ? `group "${context.group}" not found` : firstLine(error.message);
    case 'TOPIC_EXISTS':
      return context.topic !== undefined ? `topic "${context.topic}" already exists` : firstLine(error.message);
    case 'STORAGE_FULL':
      return `storage full: ${firstLine(error.message)} (retriable: delete or purge topics to free space; writes resume by themselves)`;
    case 'UNAUTHORIZED':
      // A call without credentials; a wrong or revoked one says which principal failed.
      return /^authentication required/.test(error.message)
        ? `authentication required at ${context.coordinatorUrl}: pass --principal and --secret, or set TESSERA_TOKEN (or TESSERA_PRINCIPAL and TESSERA_SECRET)`
        : firstLine(error.message);
    default:
      return firstLine(error.message);
  }
}

/**
 * The network failure (no answer at all) in `error` or its causes, with its human
 * reason, or undefined when the failure is something else.
 */
export function networkFailure(error: unknown): { error: Error; reason: string } | undefined {
  for (let current: unknown = error, depth = 0; current instanceof Error && depth < 5; depth++) {
    const code = (current as { code?: unknown }).code;
    if (typeof code === 'string' && code in NETWORK_REASONS) return { error: current, reason: NETWORK_REASONS[code]! };
    if (code === 'ERR_GOT_REQUEST_ERROR') return { error: current, reason: 'request failed' };
    current = current.cause;
  }
  return undefined;
}

function urlIn(error: unknown): string | undefined {
  const message = error instanceof Error ? error.message : String(error);
  return /https?:\/\/[A-Za-z0-9.\-\[\]]+(?::\d+)?/.exec(message)?.[0];
}

function sameOrigin(a: string, b: string): boolean {
  try {
    return new URL(a).origin === new URL(b).origin;
  } catch {
    return false;
  }
}

function firstLine(text: string): string {
  return text.split('\n', 1)[0]!.trim();
}

/** True when TESSERA_DEBUG asks for stack traces. */
export function debugEnabled(env: NodeJS.ProcessEnv = process.env): boolean {
  const value = env.TESSERA_DEBUG;
  return value !== undefined && value !== '' && value !== '0' && value !== 'false';
}
