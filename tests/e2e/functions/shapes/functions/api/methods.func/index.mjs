// Per-method Web exports (ESM): GET and POST only; other methods get 405 with allow.
export function GET(request) {
  return Response.json({ shape: 'web-methods', method: 'GET', url: request.url });
}

export async function POST(request) {
  return Response.json({ shape: 'web-methods', method: 'POST', received: await request.text() });
}
