// CommonJS per-method exports.
exports.GET = (request) => new Response(`cjs GET ${new URL(request.url).pathname}`);
exports.DELETE = () => new Response(null, { status: 204 });
