/**
 * Reading an HTTP body under a size limit: nothing the client takes from a
 * gateway (evidence, an inclusion proof, an error answer) is held beyond a
 * fixed number of bytes, however much the other side sends or claims. A
 * declared content-length over the limit is refused before anything is
 * read; otherwise the bytes are counted as they arrive, and the body is
 * destroyed (not drained) the moment the total passes the limit.
 */

/** An error answer is a short problem document: only its code is used, and more than this is not one. */
export const MAX_ERROR_BODY_BYTES = 64 * 1024

export interface ReadLimitedOptions {
  /** The response headers: their content-length, when over the limit, refuses the body unread. */
  readonly headers?: Readonly<Record<string, string | string[] | undefined>>
  /**
   * The error to throw for a body over the limit, so that each caller keeps its own code;
   * `declared` is the content-length when that was what was over it.
   */
  readonly tooLarge: (declared?: number) => Error
}

/** Stop reading `body`: a stream is destroyed (its connection is not reused for the rest), another iterable is returned. */
function discard(body: AsyncIterable<Uint8Array>): void {
  const destroy = (body as { destroy?: () => unknown }).destroy
  if (typeof destroy === 'function') {
    destroy.call(body)
    return
  }
  Promise.resolve(body[Symbol.asyncIterator]().return?.()).catch(() => undefined)
}

/** All of `body`, at most `max` bytes of it; more throws `tooLarge()`. Errors of the stream itself pass through. */
export async function readLimited(body: AsyncIterable<Uint8Array>, max: number, options: ReadLimitedOptions): Promise<Buffer> {
  const declared = Number(options.headers?.['content-length'] ?? 0)
  if (declared > max) {
    discard(body)
    throw options.tooLarge(declared)
  }
  const parts: Uint8Array[] = []
  // Bytes, not characters: the limit is on what crosses the wire and sits in memory.
  let total = 0
  for await (const part of body) {
    total += part.byteLength
    if (total > max) {
      discard(body)
      throw options.tooLarge()
    }
    parts.push(part)
  }
  return Buffer.concat(parts, total)
}
