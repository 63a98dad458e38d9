// Per-method Web exports from CommonJS.
exports.GET = (request) =>
  Response.json({ shape: 'web-methods', module: typeof module === 'object' ? 'cjs' : 'esm' });
