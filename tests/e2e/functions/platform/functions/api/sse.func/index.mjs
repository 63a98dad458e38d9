// Server-sent events: three events, ~250 ms apart.
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

export function GET(request) {
  const encoder = new TextEncoder();
  const body = new ReadableStream({
    async start(controller) {
      for (let i = 1; i <= 3; i++) {
        if (i > 1) await sleep(250);
        controller.enqueue(encoder.encode(`id: ${i}\ndata: event-${i}\n\n`));
      }
      controller.close();
    },
  });
  return new Response(body, {
    headers: { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' },
  });
}
