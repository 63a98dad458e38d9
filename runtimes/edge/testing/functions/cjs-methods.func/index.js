// CommonJS with per-method exports only.
module.exports = {
  GET: (request) => new Response(`cjs GET ${new URL(request.url).pathname}`),
  DELETE: () => new Response(null, { status: 204 }),
};
