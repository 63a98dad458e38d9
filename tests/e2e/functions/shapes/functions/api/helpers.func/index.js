// (req, res) with the Vercel helpers (spec 3.3.3), CommonJS.
module.exports = (req, res) => {
  if (req.query.redirect) return res.redirect('/elsewhere');
  res.status(201).json({
    shape: 'node-listener',
    module: typeof module === 'object' ? 'cjs' : 'esm',
    method: req.method,
    query: req.query,
    body: req.body,
    cookies: req.cookies,
  });
};
