// A default Web function with two parameters: only `useWebApi` makes it a Web handler
// (without it, a two-parameter function is a (req, res) listener).
export default async function handler(request, context) {
  return Response.json({
    shape: 'web-function',
    method: request.method,
    url: request.url,
    isRequest: request instanceof Request,
    hasWaitUntil: typeof context?.waitUntil === 'function',
  });
}
