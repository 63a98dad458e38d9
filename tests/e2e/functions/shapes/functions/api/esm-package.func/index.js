// ESM in a .js file because the nearest package.json says "type": "module".
export default function handler(req, res) {
  res.setHeader('content-type', 'application/json');
  res.end(JSON.stringify({
    shape: 'node-listener',
    module: typeof module === 'undefined' ? 'esm' : 'cjs',
    query: req.query,
  }));
}
