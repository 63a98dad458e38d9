// A streamed response lasting ~2 s: ten chunks, 200 ms apart.
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

export function GET(request) {
  const encoder = new TextEncoder();
  const body = new ReadableStream({
    async start(controller) {
      for (let i = 1; i <= 10; i++) {
        controller.enqueue(encoder.encode(`part-${i}\n`));
        await sleep(200);
      }
      controller.enqueue(encoder.encode('end\n'));
      controller.close();
    },
  });
  return new Response(body, { headers: { 'content-type': 'text/plain; charset=utf-8' } });
}
