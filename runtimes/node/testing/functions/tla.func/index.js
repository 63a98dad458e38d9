// ESM by package.json "type": "module", with top-level await (like SvelteKit's server.init()).
const config = await new Promise((resolve) => setTimeout(() => resolve({ initialised: true }), 20));

export default (req, res) => {
  res.end(JSON.stringify({ shape: 'tla', ...config, url: req.url }));
};
