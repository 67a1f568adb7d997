/** Strict base64 (standard alphabet, padded): what the text interfaces accept for bytes that are not text. */
import { TesseraError } from './errors.js';

export const BASE64_PATTERN = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** The bytes `text` encodes, or INVALID_REQUEST naming `what` when it is not strict base64 (Node's decoder skips bad characters silently). */
export function decodeBase64(text: string, what: string): Buffer {
  if (!BASE64_PATTERN.test(text)) throw new TesseraError('INVALID_REQUEST', `${what} is not valid base64`);
  return Buffer.from(text, 'base64');
}
