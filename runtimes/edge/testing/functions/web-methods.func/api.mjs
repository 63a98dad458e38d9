// Named HTTP-method exports, after a top-level await.
const greeting = await new Promise((resolve) => setTimeout(() => resolve('hello'), 10));

export function GET(request) {
  return new Response(`${greeting} GET ${new URL(request.url).search}`);
}

export async function POST(request, context) {
  return Response.json({ echo: await request.json(), waitUntil: typeof context.waitUntil }, { status: 201 });
}
