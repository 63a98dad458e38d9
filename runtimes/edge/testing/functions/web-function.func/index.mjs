// Default export (request, context) => Response: echoes what it received.
// /wait registers a waitUntil promise that settles on /release.
let release;

export default async function handler(request, context) {
  const url = new URL(request.url);
  if (url.pathname === '/wait') {
    context.waitUntil(new Promise((resolve) => (release = resolve)).then(() => console.log('waitUntil work done')));
    return new Response('waiting', { status: 202 });
  }
  if (url.pathname === '/release') {
    release?.();
    return new Response('released');
  }
  if (url.pathname === '/reject') {
    context.waitUntil(Promise.reject(new Error('waitUntil work failed')));
    return new Response('rejecting');
  }
  return Response.json({
    shape: 'web-function',
    method: request.method,
    url: request.url,
    body: await request.text(),
    contentType: request.headers.get('content-type'),
    host: request.headers.get('host'),
    hasSignal: request.signal instanceof AbortSignal,
    edgeRuntime: typeof EdgeRuntime === 'string' ? EdgeRuntime : null,
  });
}
