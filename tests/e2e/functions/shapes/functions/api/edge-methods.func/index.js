// An edge function with named method exports only.
export function GET(request) {
  return Response.json({ runtime: EdgeRuntime, method: 'GET' });
}

export async function POST(request) {
  return Response.json({ runtime: EdgeRuntime, method: 'POST', received: await request.text() });
}
