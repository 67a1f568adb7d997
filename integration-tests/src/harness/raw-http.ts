/**
 * One HTTP call as any program would make it, answering `{status, body}` instead of throwing
 * for an error status, so a scenario can check refusals. It trusts the cluster's CA when the
 * cluster serves HTTPS.
 */
import got from 'got';
import type { TlsClientOptions } from '@tessera/protocol';

export interface RawAnswer {
  /** 0 when no answer came (refused, reset, timed out); `body.error.code` then names why. */
  status: number;
  body: any;
}

export async function rawPost(
  url: string,
  body: unknown,
  options: { headers?: Record<string, string>; tls?: TlsClientOptions; timeoutMs?: number } = {},
): Promise<RawAnswer> {
  try {
    const response = await got.post(url, {
      body: JSON.stringify(body),
      headers: { 'content-type': 'application/json', ...options.headers },
      https: options.tls ? { certificateAuthority: options.tls.ca, rejectUnauthorized: options.tls.rejectUnauthorized } : undefined,
      timeout: { request: options.timeoutMs ?? 5_000 },
      retry: { limit: 0 },
      throwHttpErrors: false,
    });
    return { status: response.statusCode, body: response.body.length > 0 ? JSON.parse(response.body) : undefined };
  } catch (error) {
    return { status: 0, body: { error: { code: (error as { code?: string }).code ?? (error as Error).name } } };
  }
}
