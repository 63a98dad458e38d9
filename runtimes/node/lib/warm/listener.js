// Warm-up function of the stem cell (server.mjs): a CommonJS (req, res)
// handler using the Vercel helpers, loaded with require() and served by
// self-requests before `ready`, so a real function's first load and request
// find this code compiled.
module.exports = (req, res) => {
  if (req.method === 'GET') {
    res.status(200).send(`warm ${req.query.name}`);
    return;
  }
  res.status(200).json({ query: req.query, cookies: req.cookies, body: req.body });
};
