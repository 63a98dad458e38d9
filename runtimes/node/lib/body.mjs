// Request bodies: holding one back without consuming the stream, and reading
// one whole.

// Intercepts the chunks Node's HTTP parser pushes into `req` (the parser calls
// `req.push(chunk)` per body chunk and `req.push(null)` at the end) and keeps
// them aside. `release()` hands them to the stream as if they had just
// arrived, so user code still sees an unread `req` (same object, every
// Readable API works). Must be called synchronously in the 'request' event,
// before the parser has pushed anything.
export function holdBody(req) {
  const chunks = [];
  let ended = false;
  let released = false;
  let settle;
  const complete = new Promise((resolve, reject) => {
    settle = { resolve, reject };
  });
  complete.catch(() => {});
  const onClose = () => {
    if (!ended) settle.reject(new DOMException('client closed the request before its body ended', 'AbortError'));
  };
  req.once('close', onClose);
  req.push = (chunk) => {
    if (chunk === null) {
      ended = true;
      req.off('close', onClose);
      settle.resolve();
    } else {
      chunks.push(chunk);
    }
    return true;
  };
  return {
    // Resolves with the whole body once the parser has pushed its end.
    async whole() {
      await complete;
      return chunks.length === 1 ? chunks[0] : Buffer.concat(chunks);
    },
    release() {
      if (released) return;
      released = true;
      delete req.push;
      req.off('close', onClose);
      for (const chunk of chunks) req.push(chunk);
      if (ended) req.push(null);
    },
  };
}

export async function readWholeBody(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  return chunks.length === 1 ? chunks[0] : Buffer.concat(chunks);
}
