// What @vercel/functions' waitUntil() and getContext() do: read the request context global.
const SYMBOL = Symbol.for('@vercel/request-context');
const getContext = () => globalThis[SYMBOL]?.get?.() ?? {};
let release;

module.exports = (req, res) => {
  if (req.url === '/release') {
    release?.();
    return res.send('released');
  }
  const context = getContext();
  context.waitUntil(new Promise((resolve) => (release = resolve)));
  res.json({ hasWaitUntil: typeof context.waitUntil, id: context.headers['x-vercel-id'], url: context.url });
};
