// Node (req, res) listener, no helpers: reads the raw body stream itself.
export default async function listener(req, res) {
  let body = '';
  for await (const chunk of req) body += chunk;
  res.setHeader('content-type', 'application/json');
  res.end(
    JSON.stringify({
      shape: 'node-listener',
      url: req.url,
      method: req.method,
      body,
      host: req.headers.host,
      realIp: req.headers['x-real-ip'],
      helpers: { query: typeof req.query, json: typeof res.json },
    }),
  );
}
