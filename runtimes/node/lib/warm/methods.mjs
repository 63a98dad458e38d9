// Warm-up function of the stem cell (server.mjs): per-method Web handlers,
// loaded with import() and served by self-requests before `ready`.
export function GET(request) {
  return new Response(`warm ${new URL(request.url).searchParams.get('name')}`);
}

export async function POST(request, { waitUntil }) {
  const payload = await request.json();
  waitUntil(Promise.resolve());
  return Response.json({ echo: payload, url: request.url });
}
