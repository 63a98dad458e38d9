// Named per-method exports (Next.js route-handler style).
export function GET(request) {
  const url = new URL(request.url);
  return Response.json({
    shape: 'web-methods',
    url: request.url,
    path: url.pathname,
    q: url.searchParams.get('q'),
    host: request.headers.get('host'),
    xff: request.headers.get('x-forwarded-for'),
    id: request.headers.get('x-vercel-id'),
  });
}

export async function POST(request) {
  return new Response(`posted:${await request.text()}`, { status: 201, headers: { 'x-method': request.method } });
}
