// Default export: one function taking a Request.
export default async function handler(request) {
  const body = request.method === 'GET' || request.method === 'HEAD' ? '' : await request.text();
  return new Response(`web-function ${request.method} ${new URL(request.url).pathname} ${body}`, {
    status: 200,
    headers: { 'content-type': 'text/plain', 'x-shape': 'web-function' },
  });
}
