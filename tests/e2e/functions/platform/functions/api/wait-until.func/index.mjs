// Answers at once; the work handed to waitUntil logs a line ~300 ms later. `?via=global`
// uses the request-context global that @vercel/functions' waitUntil() reads.
export function GET(request, context) {
  const via = new URL(request.url).searchParams.get('via') || 'argument';
  const waitUntil = via === 'global'
    ? globalThis[Symbol.for('@vercel/request-context')].get().waitUntil
    : context.waitUntil;
  waitUntil(new Promise((resolve) => setTimeout(() => {
    console.log(`waitUntil work done (${via})`);
    resolve();
  }, 300)));
  return new Response('responded before the waitUntil work\n');
}
