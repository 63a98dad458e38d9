// An edge function: default export (request, context), ES module in a .js file.
export default async function handler(request, context) {
  const url = new URL(request.url);
  return Response.json({
    runtime: typeof EdgeRuntime === 'string' ? EdgeRuntime : null,
    method: request.method,
    url: request.url,
    host: request.headers.get('host'),
    query: Object.fromEntries(url.searchParams),
    body: request.method === 'POST' ? await request.text() : null,
    hasWaitUntil: typeof context?.waitUntil === 'function',
  });
}
