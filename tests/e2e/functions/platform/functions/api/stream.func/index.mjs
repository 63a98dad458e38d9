// A Web handler whose body is a ReadableStream: chunk 1, then ~300 ms later chunk 2.
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

export default function handler(request) {
  const encoder = new TextEncoder();
  const body = new ReadableStream({
    async start(controller) {
      controller.enqueue(encoder.encode('chunk-1\n'));
      await sleep(300);
      controller.enqueue(encoder.encode('chunk-2\n'));
      controller.close();
    },
  });
  return new Response(body, { headers: { 'content-type': 'text/plain; charset=utf-8' } });
}
