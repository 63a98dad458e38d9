// Server-sent events that wait for a signal between events, a duplex echo,
// and an endless stream whose cancellation (client gone) is observable.
let release;
let cancelled = false;
let aborted = false;
const released = new Promise((resolve) => (release = resolve));
const encoder = new TextEncoder();

export default function handler(request) {
  const { pathname } = new URL(request.url);
  if (pathname === '/release') {
    release();
    return new Response('released');
  }
  if (pathname === '/cancelled') return Response.json({ cancelled, aborted });
  if (pathname === '/endless') {
    request.signal.addEventListener('abort', () => (aborted = true));
    const endless = new ReadableStream({
      start(controller) {
        controller.enqueue(encoder.encode('tick\n'));
      },
      cancel() {
        cancelled = true;
      },
    });
    return new Response(endless);
  }
  if (pathname === '/echo') {
    // The response streams while the request body is still arriving.
    return new Response(request.body, { headers: { 'content-type': 'application/octet-stream' } });
  }
  const stream = new ReadableStream({
    async start(controller) {
      controller.enqueue(encoder.encode('data: one\n\n'));
      await released;
      controller.enqueue(encoder.encode('data: two\n\n'));
      controller.close();
    },
  });
  return new Response(stream, { headers: { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' } });
}
